import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { exportBundle } from '../../src/bundle/workstation/export.js';
import { createSimDevice } from '../../src/sim/sim-device.js';
import { buildAppsFactory, type AppsFactory } from '../support/apps-factory.js';
import { cli } from '../support/cli.js';
import { CrashRig } from '../support/crash-harness.js';
import { PrivateDockerd } from '../support/dockerd.js';
import { buildFactory, exportTo, OTHER_HARDWARE_ID, TAG, tempDir, type TestFactory } from '../support/factory.js';
import { makeDevice, openTestDevice, statusOf, type TestDevice } from '../support/sim-device.js';
import { flipSignatureBit, pastDate, resignBundleRole } from '../support/tamper.js';

/** scripts/factory-line.sh against simulated devices: one outcome each, read from its log as a supervisor would. */

const SCRIPT = fileURLToPath(new URL('../../../scripts/factory-line.sh', import.meta.url));
const FERRY = `${process.execPath} ${fileURLToPath(new URL('../../src/cli/ferry.js', import.meta.url))}`;

interface LineResult {
  readonly code: number;
  /** The signal that ended the script, or null if it exited. */
  readonly signal: NodeJS.Signals | null;
  readonly log: string[];
}

function lineProcess(args: readonly string[], env: Record<string, string>): Promise<LineResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [SCRIPT, ...args], {
      env: { ...process.env, FERRY, FERRY_TESTING_WAIT: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code: code ?? -1, signal, log: out.trimEnd().split('\n') }));
  });
}

/** With --sim: the script reboots the simulated device itself. */
function factoryLine(device: TestDevice, bundle: string, env: Record<string, string> = {}): Promise<LineResult> {
  return lineProcess(['--sim', device.dir, bundle, device.configDir], env);
}

/** The simulator's reboot as an external command: it returns once the device has booted again. */
const simReboot = (device: TestDevice): string => `${FERRY} sim reboot ${device.dir}`;

/**
 * The hardware path: no --sim; the reboot is $FERRY_REBOOT, the simulator's reboot unless `env` says otherwise
 * (empty: no reboot command, the script stops and asks to be run again after the boot).
 */
function hardwareLine(device: TestDevice, bundle: string, env: Record<string, string> = {}): Promise<LineResult> {
  return lineProcess([bundle, device.configDir], { FERRY_REBOOT: simReboot(device), ...env });
}

/** A boot of the device between two runs of the script: what the line does when the script stopped for it. */
async function bootDevice(device: TestDevice): Promise<void> {
  const reboot = await cli('sim', 'reboot', device.dir);
  assert.equal(reboot.code, 0, `the simulated device did not boot: ${reboot.stderr}`);
}

/** The update is committed: the device boots and runs `target`, nothing is pending, the boot trial is over. */
async function assertCommitted(device: TestDevice, target: string): Promise<void> {
  const status = await statusOf(device);
  assert.equal(status['current']?.name, target);
  assert.equal(status['booted'].target, target, 'the device boots the target');
  assert.equal(status['pending'], null, 'nothing is pending');
  assert.deepEqual(status['failedTargets'], [], 'no target is recorded as failed');
  assert.equal((await device.device.boot.flags()).upgradeAvailable, false, 'the boot trial is over');
}

/** Each line: time, device config, then what happened. */
function steps(log: readonly string[]): string[] {
  return log.map((line) => {
    assert.match(line, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \S+ /, `a supervisor-readable line: ${line}`);
    return line.split(' ').slice(2).join(' ');
  });
}

let factory: TestFactory;
before(async () => {
  factory = await buildFactory();
});

describe('scripts/factory-line.sh', () => {
  test('an update: install 100, reboot, run 0: RESULT PASS with the new target, exit 0', async () => {
    const device = await makeDevice(factory, factory.v1);
    const { code, log } = await factoryLine(device, await exportTo(factory, factory.v2));
    assert.equal(code, 0, log.join('\n'));
    const lines = steps(log);
    assert.match(lines[0]!, /^install exit 100/);
    assert.equal(lines[1], 'reboot (simulated)');
    assert.match(lines[2]!, /^run exit 0/);
    assert.equal(lines.at(-1), `RESULT PASS ${factory.v2}`);
    assert.equal((await statusOf(device))['current'].name, factory.v2);
  });

  test('already up to date: RESULT PASS, exit 0, nothing rebooted', async () => {
    const device = await makeDevice(factory, factory.v2);
    const { code, log } = await factoryLine(device, await exportTo(factory, factory.v2));
    assert.equal(code, 0, log.join('\n'));
    assert.ok(!steps(log).some((line) => line.startsWith('reboot')));
    assert.equal(steps(log).at(-1), `RESULT PASS ${factory.v2}`);
  });

  const refusals: Array<[string, () => Promise<{ device: TestDevice; bundle: string }>, number, RegExp]> = [
    [
      'a device of another board',
      async () => ({
        device: await makeDevice(factory, factory.v1, { hardwareId: OTHER_HARDWARE_ID }),
        bundle: await exportTo(factory, factory.v2),
      }),
      7,
      /not for this device/,
    ],
    [
      'a bit flipped in a signature',
      async () => {
        const bundle = await exportTo(factory, factory.v2);
        await flipSignatureBit(bundle, 'targets.json');
        return { device: await makeDevice(factory, factory.v1), bundle };
      },
      11,
      /bad, damaged or expired/,
    ],
    [
      'expired metadata',
      async () => {
        const bundle = await exportTo(factory, factory.v2);
        await resignBundleRole(factory.repo, bundle, 'timestamp', (signed) => ({ ...signed, expires: pastDate(1) }));
        return { device: await makeDevice(factory, factory.v1), bundle };
      },
      12,
      /bad, damaged or expired/,
    ],
    [
      'a rootfs that never boots: the bootloader rolls back',
      async () => ({
        device: await makeDevice(factory, factory.v1),
        bundle: await exportTo(factory, factory.v3BootFails),
      }),
      99,
      /rolled back/,
    ],
  ];
  for (const [name, arrange, expected, reason] of refusals) {
    test(`${name}: RESULT FAIL ${expected}, exit ${expected}`, async () => {
      const { device, bundle } = await arrange();
      const { code, log } = await factoryLine(device, bundle);
      assert.equal(code, expected, log.join('\n'));
      const last = steps(log).at(-1)!;
      assert.match(last, new RegExp(`^RESULT FAIL ${expected} `));
      assert.match(last, reason);
    });
  }
});

describe('scripts/factory-line.sh with apps', () => {
  let apps: AppsFactory;
  let daemon: PrivateDockerd;
  let rig: CrashRig;
  before(async () => {
    apps = await buildAppsFactory();
    daemon = await PrivateDockerd.start();
    rig = new CrashRig(apps, [daemon]);
  });
  after(() => daemon?.stop());

  test('an apps-only update: install 101, engine restart, run 0: RESULT PASS', async () => {
    const dir = path.join(await tempDir('line-apps'), 'device');
    await createSimDevice(dir, apps.repo, {
      target: apps.targets.base,
      dockerHost: daemon.host,
      testingWindowSeconds: 1,
    });
    const device = await openTestDevice(dir);
    const bundle = path.join(await tempDir('line-bundle'), 'bundle');
    await exportBundle(apps.repo, {
      targetName: apps.targets.heartbeatV2,
      destination: bundle,
      tag: TAG,
      type: 'ci',
      expiresInDays: 30,
    });
    const marker = path.join(await tempDir('engine'), 'restarted');
    const { code, log } = await factoryLine(device, bundle, { FERRY_ENGINE_RESTART: `touch ${marker}` });
    assert.equal(code, 0, log.join('\n'));
    const lines = steps(log);
    assert.match(lines[0]!, /^install exit 101/);
    assert.equal(lines[1], `restart the container engine: touch ${marker}`);
    assert.equal(lines.at(-1), `RESULT PASS ${apps.targets.heartbeatV2}`);
    await fs.access(marker);
  });

  // The hardware path with apps: no --sim, the reboot is $FERRY_REBOOT (the simulator's reboot).

  test('on hardware, an apps-only update with a system-policy app: install 100, $FERRY_REBOOT, run 0: RESULT PASS', async (t) => {
    const device = await rig.freshDevice(t, apps.targets.base);
    const { code, log } = await hardwareLine(device, await rig.bundleFor(apps.targets.systemApp));
    assert.equal(code, 0, log.join('\n'));
    const lines = steps(log);
    assert.match(lines[0]!, /^install exit 100/);
    assert.equal(lines[1], `reboot: ${simReboot(device)}`);
    assert.match(lines[2]!, /^run exit 0/);
    assert.equal(lines[3], `RESULT PASS ${apps.targets.systemApp}`);
    assert.equal(lines.length, 4, log.join('\n'));
    await assertCommitted(device, apps.targets.systemApp);
    await rig.discard(device);
  });

  test('on hardware, an apps-only update cut by a power cut before the engine restart: run again after the boot, install 30, run 0, nothing rebooted: RESULT PASS', async (t) => {
    const device = await rig.freshDevice(t, apps.targets.base);
    const bundle = await rig.bundleFor(apps.targets.heartbeatV2);
    // The power goes at the engine restart: the script dies with the device.
    const cut = await hardwareLine(device, bundle, { FERRY_ENGINE_RESTART: 'kill -KILL $$' });
    assert.equal(cut.signal, 'SIGKILL', cut.log.join('\n'));
    assert.match(steps(cut.log)[0]!, /^install exit 101/);

    await rig.powerCycle(device);
    const marker = path.join(await tempDir('engine'), 'restarted');
    const { code, log } = await hardwareLine(device, bundle, { FERRY_ENGINE_RESTART: `touch ${marker}` });
    assert.equal(code, 0, log.join('\n'));
    const lines = steps(log);
    assert.match(lines[0]!, /^install exit 30/);
    assert.ok(!lines.some((line) => /^(reboot|RESULT REBOOT|restart)/.test(line)), log.join('\n'));
    assert.match(
      lines.find((line) => line.startsWith('run '))!,
      /^run exit 0/,
    );
    assert.equal(lines.at(-1), `RESULT PASS ${apps.targets.heartbeatV2}`);
    await assertCommitted(device, apps.targets.heartbeatV2);
    assert.deepEqual(device.daemon.running(), rig.expectedContainers(apps.targets.heartbeatV2));
    await rig.discard(device);
  });

  // A power cut during `run` (ferry killed at the step, as the crash harness does it), then the power back: the line
  // runs the script again after the boot, and it finishes what the cut `run` began. No reboot the update did not ask for.
  const cuts: Array<[string, (a: AppsFactory) => string, (a: AppsFactory) => string, number]> = [
    ['run.apps-watch', (a) => a.targets.mixed, (a) => a.targets.mixed, 0],
    ['run.boot-trial-end:done', (a) => a.targets.mixed, (a) => a.targets.mixed, 0],
    ['run.commit-record:done', (a) => a.targets.mixed, (a) => a.targets.mixed, 0],
    ['run.fallback-undeploy', (a) => a.targets.bootFails, (a) => a.targets.base, 99],
  ];
  for (const [point, targetOf, endsOn, expected] of cuts) {
    test(`on hardware, a run cut by a power cut at ${point}: run again after the boot, it ends with exit ${expected}`, async (t) => {
      const device = await rig.freshDevice(t, apps.targets.base);
      const bundle = await rig.bundleFor(targetOf(apps));
      const cut = await hardwareLine(device, bundle, { FERRY_CRASH_AT: point });
      assert.deepEqual(
        steps(cut.log)
          .slice(0, 3)
          .map((line) => line.split(':')[0]),
        ['install exit 100', 'reboot', 'run exit 137'],
        `ferry died in run: ${cut.log.join('\n')}`,
      );

      await rig.powerCycle(device);
      const { code, log } = await hardwareLine(device, bundle);
      assert.equal(code, expected, log.join('\n'));
      const lines = steps(log);
      assert.match(lines[0]!, /^install exit (30|0)/);
      assert.ok(!lines.some((line) => /^(reboot|RESULT REBOOT)/.test(line)), log.join('\n'));
      assert.match(lines.at(-1)!, expected === 0 ? new RegExp(`^RESULT PASS ${endsOn(apps)}$`) : /^RESULT FAIL 99 /);
      const status = await statusOf(device);
      assert.equal(status['current'].name, endsOn(apps));
      assert.equal(status['pending'], null);
      await rig.waitForContainers(device.daemon, rig.expectedContainers(endsOn(apps)));
      await rig.discard(device);
    });
  }
});

/**
 * The hardware path: no --sim. The reboot is an external command ($FERRY_REBOOT, here the simulator's reboot), or
 * none, and then the script stops and the line runs it again after the boot. Either way a device is rebooted only
 * when ferry asks for it, and the script run again after a boot goes on with `run`.
 */
describe('scripts/factory-line.sh on hardware: the reboot is $FERRY_REBOOT', () => {
  test('an update: install 100, $FERRY_REBOOT, run 0: RESULT PASS; run again after the next boot: install 0, no reboot', async () => {
    const device = await makeDevice(factory, factory.v1);
    const bundle = await exportTo(factory, factory.v2);
    const { code, log } = await hardwareLine(device, bundle);
    assert.equal(code, 0, log.join('\n'));
    const lines = steps(log);
    assert.match(lines[0]!, /^install exit 100/);
    assert.equal(lines[1], `reboot: ${simReboot(device)}`);
    assert.match(lines[2]!, /^run exit 0/);
    assert.equal(lines[3], `RESULT PASS ${factory.v2}`);
    assert.equal(lines.length, 4, log.join('\n'));
    await assertCommitted(device, factory.v2);

    await bootDevice(device);
    const again = await hardwareLine(device, bundle);
    assert.equal(again.code, 0, again.log.join('\n'));
    const next = steps(again.log);
    assert.match(next[0]!, /^install exit 0/);
    assert.deepEqual(next.slice(1), [`RESULT PASS ${factory.v2}`]);
    await assertCommitted(device, factory.v2);
  });

  test('a rootfs that never boots: install 100, $FERRY_REBOOT (the bootloader falls back), run 99: RESULT FAIL 99; the good target still installs', async () => {
    const device = await makeDevice(factory, factory.v1);
    const bad = await exportTo(factory, factory.v3BootFails);
    const { code, log } = await hardwareLine(device, bad);
    assert.equal(code, 99, log.join('\n'));
    const lines = steps(log);
    assert.match(lines[0]!, /^install exit 100/);
    assert.equal(lines[1], `reboot: ${simReboot(device)}`);
    assert.match(lines[2]!, /^run exit 99/);
    assert.match(lines[3]!, /^RESULT FAIL 99 .*rolled back/);
    assert.equal(lines.length, 4, log.join('\n'));
    const status = await statusOf(device);
    assert.equal(status['current'].name, factory.v1);
    assert.equal(status['pending'], null);
    assert.deepEqual(
      status['failedTargets'].map((entry: { target: { name: string } }) => entry.target.name),
      [factory.v3BootFails],
    );

    const retried = await hardwareLine(device, bad);
    assert.equal(retried.code, 77, retried.log.join('\n'));
    assert.ok(!steps(retried.log).some((line) => line.startsWith('reboot')), retried.log.join('\n'));

    const good = await hardwareLine(device, await exportTo(factory, factory.v2));
    assert.equal(good.code, 0, good.log.join('\n'));
    assert.equal(steps(good.log).at(-1), `RESULT PASS ${factory.v2}`);
    assert.equal((await statusOf(device))['current'].name, factory.v2);
  });

  const stopsForTheBoot: Array<[string, string, (f: TestFactory) => string, number, RegExp]> = [
    ['no $FERRY_REBOOT', '', (f) => f.v2, 0, /^RESULT PASS /],
    ['no $FERRY_REBOOT, a rootfs that never boots', '', (f) => f.v3BootFails, 99, /^RESULT FAIL 99 .*rolled back/],
    // A reboot issued on the device itself returns before the device goes down: `run` says it has not rebooted.
    ['a reboot command that returns before the device goes down', 'true', (f) => f.v2, 0, /^RESULT PASS /],
  ];
  for (const [name, reboot, targetOf, expected, result] of stopsForTheBoot) {
    test(`${name}: RESULT REBOOT, exit 100; run again after the boot: install 30, run, exit ${expected}`, async () => {
      const device = await makeDevice(factory, factory.v1);
      const bundle = await exportTo(factory, targetOf(factory));
      const first = await hardwareLine(device, bundle, { FERRY_REBOOT: reboot });
      assert.equal(first.code, 100, first.log.join('\n'));
      const stopped = steps(first.log);
      assert.match(stopped[0]!, /^install exit 100/);
      assert.match(stopped.at(-1)!, /^RESULT REBOOT .*run this script again/);
      assert.equal(
        (await statusOf(device))['pending']?.target.name,
        targetOf(factory),
        'the update waits for the boot',
      );

      await bootDevice(device);
      const second = await hardwareLine(device, bundle, { FERRY_REBOOT: reboot });
      assert.equal(second.code, expected, second.log.join('\n'));
      const lines = steps(second.log);
      assert.match(lines[0]!, /^install exit 30/);
      assert.ok(!lines.some((line) => /^(reboot|RESULT REBOOT)/.test(line)), second.log.join('\n'));
      assert.match(
        lines.find((line) => line.startsWith('run '))!,
        new RegExp(`^run exit ${expected === 0 ? 0 : 99}`),
      );
      assert.match(lines.at(-1)!, result);
      if (expected === 0) await assertCommitted(device, targetOf(factory));
      else assert.equal((await statusOf(device))['current'].name, factory.v1);
    });
  }
});
