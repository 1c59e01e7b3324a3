import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { writeRebootSentinel } from '../../src/device/device.js';
import { emptyStatus, type DeviceStatus, type TargetRef } from '../../src/device/status-file.js';
import { runPending } from '../../src/lifecycle/run.js';
import { akliteOffline, cli } from '../support/cli.js';
import { makeFakeDevice, type FakeDevice } from '../support/fake-device.js';
import { buildFactory, exportTo, tempDir, type TestFactory } from '../support/factory.js';
import { assertRefused, makeDevice, statusOf, type TestDevice } from '../support/sim-device.js';

let factory: TestFactory;
let bundleV2: string;

before(async () => {
  factory = await buildFactory();
  bundleV2 = await exportTo(factory, factory.v2);
});

/** One call of the callback program as the recording script wrote it; '-' for a variable that was not set. */
interface RecordedCall {
  readonly message: string;
  readonly result: string;
  readonly current: string;
  readonly install: string;
  readonly currentTarget: string;
}

/** A callback program that appends its environment to a file, one line a call, and exits with `exitCode`. */
async function recordingCallback(exitCode = 0): Promise<{ program: string; calls(): Promise<RecordedCall[]> }> {
  const dir = await tempDir('callback');
  const record = path.join(dir, 'calls');
  const program = path.join(dir, 'record-calls');
  await fs.writeFile(
    program,
    [
      '#!/bin/sh',
      `printf '%s|%s|%s|%s|%s\\n' "$MESSAGE" "\${RESULT-"-"}" "\${CURRENT_TARGET_NAME-"-"}" "\${INSTALL_TARGET_NAME-"-"}" "$CURRENT_TARGET" >> ${JSON.stringify(record)}`,
      ...(exitCode === 0 ? [] : [`echo "callback broke at $MESSAGE" >&2`, `exit ${exitCode}`]),
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  return {
    program,
    calls: async () => {
      const text = await fs.readFile(record, 'utf8').catch(() => '');
      return text
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => {
          const [message, result, current, install, currentTarget] = line.split('|') as [
            string,
            string,
            string,
            string,
            string,
          ];
          return { message, result, current, install, currentTarget };
        });
    },
  };
}

/** Adds `[pacman] callback_program` (and any other keys) to a simulated device's configuration. */
async function configureCallback(device: TestDevice, program: string, ferryKeys: readonly string[] = []) {
  await fs.writeFile(
    path.join(device.configDir, '90-callback.toml'),
    ['[pacman]', `callback_program = ${JSON.stringify(program)}`, '[ferry]', ...ferryKeys, ''].join('\n'),
  );
}

/** Whether a process is gone (or a zombie, killed and not yet reaped), waiting for the kill to land. */
async function ends(pid: number): Promise<boolean> {
  for (let tries = 0; tries < 100; tries++) {
    const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
    if (stat === null || stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

const short = (call: RecordedCall) => [call.message, call.result, call.current, call.install];

describe('the callback program ([pacman] callback_program)', () => {
  test('an install, the reboot and a run call it at each event, in order, with the environment aktualizr-lite sets', async () => {
    const device = await makeDevice(factory, factory.v1);
    const callback = await recordingCallback();
    await configureCallback(device, callback.program);
    const { v1, v2 } = factory;

    const install = await cli('install', '--config', device.configDir, '--src-dir', bundleV2);
    assert.equal(install.code, 100, install.stderr);
    assert.equal(install.stderr, '');
    assert.deepEqual((await callback.calls()).map(short), [
      ['check-for-update-pre', '-', v1, '-'],
      ['check-for-update-post', 'OK', v1, v2],
      ['download-pre', '-', v1, v2],
      ['download-post', 'OK', v1, v2],
      ['install-pre', '-', v1, v2],
      ['install-post', 'NEEDS_COMPLETION', v1, v2],
    ]);
    for (const call of await callback.calls()) assert.equal(call.currentTarget, device.device.paths.statusFile);

    assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
    const run = await cli('run', '--config', device.configDir);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual((await callback.calls()).slice(6).map(short), [
      ['install-final-pre', '-', v1, v2],
      ['install-final-post', 'OK', v2, v2],
    ]);

    // A run with nothing pending finalizes nothing: no call.
    assert.equal((await cli('run', '--config', device.configDir)).code, 0);
    assert.equal((await callback.calls()).length, 8);
  });

  test('a rootfs the bootloader rolls back: the run that finds it calls install-final-pre and install-final-post FAILED with the reason', async () => {
    const device = await makeDevice(factory, factory.v1, { bootlimit: 1 });
    const callback = await recordingCallback();
    await configureCallback(device, callback.program);
    const bundle = await exportTo(factory, factory.v3BootFails);
    assert.equal((await cli('install', '--config', device.configDir, '--src-dir', bundle)).code, 100);
    assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
    const run = await cli('run', '--config', device.configDir);
    assert.equal(run.code, 99, run.stderr);
    const calls = (await callback.calls()).slice(6);
    assert.deepEqual(
      calls.map((call) => [call.message, call.install]),
      [
        ['install-final-pre', factory.v3BootFails],
        ['install-final-post', factory.v3BootFails],
      ],
    );
    assert.equal(calls[1]!.result, `FAILED: ${run.stderr.trim().replace(/^ferry: /, '')}`);
    assert.match(calls[1]!.result, /did not boot/);
    assert.equal(calls[1]!.current, factory.v1, 'the device runs the previous target again');
  });

  test('a refused install calls check-for-update-post with FAILED and the reason, and nothing after it; the device is unchanged', async () => {
    const device = await makeDevice(factory, factory.v1, { tags: ['devel'] });
    const callback = await recordingCallback();
    await configureCallback(device, callback.program);
    await assertRefused(device, bundleV2, 15, /tag "main".*"devel"/);
    const calls = await callback.calls();
    assert.deepEqual(
      calls.map((call) => [call.message, call.install]),
      [
        ['check-for-update-pre', '-'],
        ['check-for-update-post', '-'],
      ],
    );
    assert.match(calls[1]!.result, /^FAILED: .*tag "main".*"devel"/);
  });

  test('aklite-offline check is a check for an update only', async () => {
    const device = await makeDevice(factory, factory.v1);
    const callback = await recordingCallback();
    await configureCallback(device, callback.program);
    const check = await akliteOffline('check', '--config', device.configDir, '--src-dir', bundleV2);
    assert.equal(check.stderr, '');
    assert.deepEqual((await callback.calls()).map(short), [
      ['check-for-update-pre', '-', factory.v1, '-'],
      ['check-for-update-post', 'OK', factory.v1, factory.v2],
    ]);
  });

  test('a callback that exits 1 changes no exit code: each failure is a warning on stderr and in the status log', async () => {
    const device = await makeDevice(factory, factory.v1);
    const callback = await recordingCallback(1);
    await configureCallback(device, callback.program);
    const install = await cli('install', '--config', device.configDir, '--src-dir', bundleV2);
    assert.equal(install.code, 100, install.stderr);
    const warnings = install.stderr.trimEnd().split('\n');
    assert.equal(warnings.length, 6, install.stderr);
    assert.match(
      warnings[0]!,
      /^ferry: warning: callback check-for-update-pre: .* exited 1: callback broke at check-for-update-pre$/,
    );
    const installed = await statusOf(device);
    assert.equal(installed['state'], 'INPROGRESS');
    assert.equal(installed['pending'].target.name, factory.v2);
    assert.equal(installed['log'].length, 6);
    assert.match(installed['log'][5], /warning: callback install-post: .* exited 1/);

    assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
    const run = await cli('run', '--config', device.configDir);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr.trimEnd().split('\n').length, 2);
    const done = await statusOf(device);
    assert.equal(done['state'], 'DONE');
    assert.match(done['log'].join('\n'), /callback install-final-post: .* exited 1/);
  });

  test('a callback that hangs is killed at its timeout, with what it started, and the install goes on', async () => {
    const device = await makeDevice(factory, factory.v1);
    const dir = await tempDir('callback');
    const program = path.join(dir, 'hang');
    const pids = path.join(dir, 'pids');
    // The script waits on a child of its own: the kill must reach the child too.
    await fs.writeFile(program, `#!/bin/sh\nsleep 600 &\necho $! >> ${JSON.stringify(pids)}\nwait\n`, { mode: 0o755 });
    await configureCallback(device, program, ['callback_timeout_seconds = 0.5']);
    const install = await cli('install', '--config', device.configDir, '--src-dir', bundleV2);
    assert.equal(install.code, 100, install.stderr);
    const warnings = install.stderr.trimEnd().split('\n');
    assert.equal(warnings.length, 6, install.stderr);
    for (const line of warnings) assert.match(line, /did not finish within 0\.5 s and was killed/);
    const started = (await fs.readFile(pids, 'utf8')).split('\n').filter((pid) => pid !== '');
    assert.equal(started.length, 6);
    for (const pid of started) assert.ok(await ends(Number(pid)), `the callback's child ${pid} still runs`);
  });

  test('a callback program that cannot be run or does not exist is reported, and the install goes on', async () => {
    const notExecutable = await makeDevice(factory, factory.v1);
    const dir = await tempDir('callback');
    const program = path.join(dir, 'not-executable');
    await fs.writeFile(program, '#!/bin/sh\nexit 0\n', { mode: 0o644 });
    await configureCallback(notExecutable, program);
    const install = await cli('install', '--config', notExecutable.configDir, '--src-dir', bundleV2);
    assert.equal(install.code, 100, install.stderr);
    assert.match(install.stderr.split('\n')[0]!, /callback check-for-update-pre: .* could not be run: .*EACCES/);

    // As aktualizr-lite does: a missing program is reported once, and no callback is called.
    const missing = await makeDevice(factory, factory.v1);
    await configureCallback(missing, path.join(dir, 'nowhere'));
    const again = await cli('install', '--config', missing.configDir, '--src-dir', bundleV2);
    assert.equal(again.code, 100, again.stderr);
    assert.equal(
      again.stderr,
      `ferry: warning: callback_program ${path.join(dir, 'nowhere')} does not exist: no callbacks are called\n`,
    );
  });
});

const ref = (name: string, n: number, apps: TargetRef['apps'] = {}): TargetRef => ({
  name,
  version: String(n),
  commit: n.toString(16).padStart(64, '0'),
  apps,
});
const os1 = ref('os-1', 1);
const os2 = ref('os-2', 2, {
  web: { uri: `hub/web@sha256:${'b'.repeat(64)}`, digest: `sha256:${'b'.repeat(64)}`, restartPolicy: 'container' },
});

/** A fake device that staged os-2 over os-1 and booted `booted`. */
async function stagedDevice(booted: TargetRef, target: TargetRef = ref('os-2', 2)): Promise<FakeDevice> {
  const status: DeviceStatus = {
    ...emptyStatus(),
    state: 'INPROGRESS',
    current: os1,
    pending: {
      phase: 'staged',
      target,
      previous: os1,
      installedAt: '2026-11-23T10:00:00.000Z',
      completion: 'reboot',
      rootfsChanged: true,
      repair: false,
    },
  };
  const device = await makeFakeDevice(status);
  device.sysroot.commits = [target.commit, os1.commit];
  device.boot.upgradeAvailable = true;
  device.boot.bootcount = 1;
  await device.sysroot.boot(booted.commit, device.paths.volatileDir);
  return device;
}

describe('the callback program at the events of run (a fake device records the calls)', () => {
  test('a run that fails on the way (the engine cannot be reached) calls install-final-post with FAILED and its reason', async () => {
    const device = await stagedDevice(os2, os2);
    device.engine.reachable = false;
    const report = await runPending(device);
    assert.equal(report.outcome, 'ENGINE_UNAVAILABLE');
    assert.deepEqual(
      device.callback.calls.map((call) => [call.event, call.currentTargetName, call.installTargetName, call.result]),
      [
        ['install-final-pre', 'os-1', 'os-2', undefined],
        ['install-final-post', 'os-1', 'os-2', `FAILED: ${report.message}`],
      ],
    );
  });

  test('a run before the reboot finalizes nothing and calls nothing', async () => {
    const device = await stagedDevice(os1);
    await writeRebootSentinel(device);
    assert.equal((await runPending(device)).outcome, 'REBOOT_NOT_DONE_YET');
    assert.deepEqual(device.callback.calls, []);
  });

  test('a callback that fails leaves the outcome as it was, and a warning in the status log of the committed update', async () => {
    const device = await stagedDevice(ref('os-2', 2));
    device.callback.problem = 'callback install-final-pre: /bin/handler exited 3';
    const report = await runPending(device);
    assert.equal(report.outcome, 'UPDATE_SUCCEEDED', report.message);
    const after = JSON.parse(await fs.readFile(device.paths.statusFile, 'utf8')) as DeviceStatus;
    assert.equal(after.state, 'DONE');
    assert.equal(after.log.length, 2, after.log.join('\n'));
    for (const line of after.log) assert.match(line, /warning: callback install-final-pre: \/bin\/handler exited 3$/);
  });
});
