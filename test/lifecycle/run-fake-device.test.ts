import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { describe, test } from 'node:test';
import { rebootSentinelPresent, writeRebootSentinel } from '../../src/device/device.js';
import { emptyStatus, type DeviceStatus, type TargetRef } from '../../src/device/status-file.js';
import { exitCodeOf } from '../../src/exit-codes.js';
import { runPending } from '../../src/lifecycle/run.js';
import { deviceStatus } from '../../src/lifecycle/status.js';
import { makeFakeDevice, type FakeDevice } from '../support/fake-device.js';

/**
 * `run` on a device whose ports are fakes: the planner's decisions carried out end to end, with no ostree, bootloader
 * tools or container engine. What the real tools do is proven in install-run, matrix and the crash tests.
 */

const ref = (name: string, version: string, n: number, apps: TargetRef['apps'] = {}): TargetRef => ({
  name,
  version,
  commit: n.toString(16).padStart(64, '0'),
  apps,
});
const v1 = ref('os-1', '1', 1);
const v2 = ref('os-2', '2', 2);
const withApp = ref('os-2', '2', 2, {
  web: { uri: `hub/web@sha256:${'b'.repeat(64)}`, digest: `sha256:${'b'.repeat(64)}`, restartPolicy: 'container' },
});
const AT = '2026-11-23T10:00:00.000Z';
const staged = (target: TargetRef): DeviceStatus => ({
  ...emptyStatus(),
  state: 'INPROGRESS',
  current: v1,
  pending: {
    phase: 'staged',
    target,
    previous: v1,
    installedAt: AT,
    completion: 'reboot',
    rootfsChanged: true,
    repair: false,
  },
});

/** A device that installed `target`: deployed as the default over v1, the boot trial armed, and booted `booted`. */
async function deviceAfterInstall(status: DeviceStatus, booted: TargetRef, bootcount = 1): Promise<FakeDevice> {
  const device = await makeFakeDevice(status);
  device.sysroot.commits = [status.pending!.target.commit, v1.commit];
  device.boot.upgradeAvailable = true;
  device.boot.bootcount = bootcount;
  await device.sysroot.boot(booted.commit, device.paths.volatileDir);
  return device;
}

async function record(device: FakeDevice): Promise<DeviceStatus> {
  return JSON.parse(await fs.readFile(device.paths.statusFile, 'utf8')) as DeviceStatus;
}

describe('run on a fake device', () => {
  test('booted the new target: the trial ends and the update is committed (0)', async () => {
    const device = await deviceAfterInstall(staged(v2), v2);
    const report = await runPending(device);
    assert.equal(report.outcome, 'UPDATE_SUCCEEDED', report.message);
    assert.equal(device.boot.upgradeAvailable, false);
    const after = await record(device);
    assert.equal(after.state, 'DONE');
    assert.equal(after.pending, null);
    assert.deepEqual([after.current?.name, after.rollback?.name], ['os-2', 'os-1']);
  });

  test('the bootloader fell back: the failed deployment goes, the target is remembered as failed (99)', async () => {
    const device = await deviceAfterInstall(staged(v2), v1, 4);
    const report = await runPending(device);
    assert.equal(report.outcome, 'ROLLED_BACK', report.message);
    assert.equal(exitCodeOf(report.outcome), 99);
    assert.deepEqual(device.sysroot.commits, [v1.commit]);
    assert.equal(device.boot.upgradeAvailable, false);
    const after = await record(device);
    assert.deepEqual(
      after.failedTargets.map((entry) => entry.target.name),
      ['os-2'],
    );
    assert.equal(after.current?.name, 'os-1');
  });

  test('a record of the older shape, an install cut while deploying in this boot: it is undone (32)', async () => {
    const device = await deviceAfterInstall(staged(v2), v1, 0);
    const old = {
      ...staged(v2),
      pending: {
        target: v2,
        previous: v1,
        installedAt: AT,
        completion: 'reboot',
        rootfsChanged: true,
        stage: 'deploying',
      },
    };
    await fs.writeFile(device.paths.statusFile, JSON.stringify(old));
    await writeRebootSentinel(device);
    const report = await runPending(device);
    assert.equal(report.outcome, 'INSTALL_INTERRUPTED', report.message);
    assert.deepEqual(device.sysroot.commits, [v1.commit]);
    assert.equal(device.boot.upgradeAvailable, false);
    assert.equal(await rebootSentinelPresent(device), false);
    assert.equal((await record(device)).pending, null);
  });

  test('not rebooted yet: nothing is written (100)', async () => {
    const device = await deviceAfterInstall(staged(v2), v1, 0);
    await writeRebootSentinel(device);
    const before = await fs.readFile(device.paths.statusFile, 'utf8');
    const report = await runPending(device);
    assert.equal(report.outcome, 'REBOOT_NOT_DONE_YET', report.message);
    assert.equal(await fs.readFile(device.paths.statusFile, 'utf8'), before);
    assert.equal(device.boot.upgradeAvailable, true);
  });

  test('the engine cannot be reached: the update stays pending, the trial armed (5)', async () => {
    const device = await deviceAfterInstall(staged(withApp), withApp);
    device.engine.reachable = false;
    const report = await runPending(device);
    assert.equal(report.outcome, 'ENGINE_UNAVAILABLE', report.message);
    assert.equal(exitCodeOf(report.outcome), 5);
    assert.equal(device.boot.upgradeAvailable, true);
    const after = await record(device);
    assert.equal(after.state, 'ERROR');
    assert.equal(after.pending?.phase, 'staged');
  });

  test('an update without apps runs the health checks once, at the end of its (empty) window, before it commits (0)', async () => {
    const device = await deviceAfterInstall(staged(v2), v2);
    const report = await runPending(device);
    assert.equal(report.outcome, 'UPDATE_SUCCEEDED', report.message);
    assert.deepEqual(device.healthChecks.runs, [{ phase: 'window-end', target: 'os-2' }]);
  });

  test('a failed health check rolls a rootfs update back like failed apps: 100 with its output in the snippet, then 99 unchecked', async () => {
    const device = await deviceAfterInstall(staged(v2), v2);
    device.healthChecks.result = {
      ok: false,
      log: ['health check 10-modem (window-end) failed'],
      failure: 'status goal not reached: 10-modem: no carrier on wwan0',
      output: ['probing wwan0', 'no carrier on wwan0'],
    };
    const report = await runPending(device);
    assert.equal(report.outcome, 'APPS_FAILED_REBOOT_TO_ROLLBACK', report.message);
    assert.equal(exitCodeOf(report.outcome), 100);
    assert.match(report.message, /status goal not reached: 10-modem: no carrier on wwan0/);
    assert.deepEqual(device.sysroot.commits[0], v1.commit, 'the previous deployment is the default again');
    const failed = await record(device);
    assert.equal(failed.state, 'ERROR');
    const snippet = failed.lastError!.log.join('\n');
    assert.match(snippet, /health check 10-modem \(window-end\) failed/);
    assert.match(snippet, /\| probing wwan0\n.*\| no carrier on wwan0/);
    assert.deepEqual(
      failed.failedTargets.map((entry) => entry.target.name),
      ['os-2'],
    );

    await device.sysroot.boot(v1.commit, device.paths.volatileDir);
    const back = await runPending(device);
    assert.equal(back.outcome, 'APPS_ROLLED_BACK', back.message);
    assert.equal(exitCodeOf(back.outcome), 99);
    assert.equal(device.healthChecks.runs.length, 1, 'the way back is not checked');
    assert.equal((await record(device)).current?.name, 'os-1');
  });

  test('status lists each app of the pending and current target with its goal and what run last saw it reach', async () => {
    const pinned = { ...withApp.apps['web']!, statusGoal: 'healthy' as const };
    const pending = ref('os-3', '3', 3, { web: pinned, db: { ...pinned, digest: `sha256:${'c'.repeat(64)}` } });
    const device = await deviceAfterInstall(
      {
        ...staged(pending),
        current: withApp,
        appGoals: { target: 'os-3', at: AT, apps: { web: { goal: 'healthy', reached: 'starting' } } },
      },
      withApp,
    );
    const report = await deviceStatus(device);
    const apps = (report.data as { apps: unknown[] }).apps;
    assert.deepEqual(apps, [
      { app: 'web', target: 'os-3', goal: 'healthy', reached: 'starting', at: AT },
      { app: 'db', target: 'os-3', goal: 'healthy', reached: null, at: null },
      // No signed goal and not in the app store: unknown.
      { app: 'web', target: 'os-2', goal: null, reached: null, at: null },
    ]);
    assert.match(report.message, new RegExp(`app web \\(os-3\\): goal healthy, reached starting \\(${AT}\\)`));
  });
});
