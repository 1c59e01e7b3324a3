import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test, type TestContext } from 'node:test';
import { exportBundle } from '../../src/bundle/workstation/export.js';
import { createSimDevice } from '../../src/sim/sim-device.js';
import { buildAppsFactory, type AppsFactory } from '../support/apps-factory.js';
import { cli } from '../support/cli.js';
import { assertStatusSchema } from '../support/status-schema.js';
import { PrivateDockerd } from '../support/dockerd.js';
import { TAG, tempDir } from '../support/factory.js';
import { openTestDevice, type TestDevice } from '../support/sim-device.js';

/**
 * Every cell of the install/run matrix (reference §3), on both bootloader backends, through real ostree, the real
 * env tools, a real dockerd and the simulated bootloader. Each cell asserts the exit code, the state file, the
 * bootloader variables and the default deployment.
 */

let factory: AppsFactory;
before(async () => {
  factory = await buildAppsFactory();
});

/** A fresh export each time: metadata versions only grow, as a device that saw a newer bundle requires. */
async function bundleFor(target: string): Promise<string> {
  const destination = path.join(await tempDir('matrix-bundle'), 'bundle');
  await exportBundle(factory.repo, { targetName: target, destination, tag: TAG, type: 'ci', expiresInDays: 30 });
  return destination;
}

interface Cell {
  readonly device: TestDevice;
  readonly daemon: PrivateDockerd;
  readonly last: { code: number; stdout: string; stderr: string };
}

type Step = (cell: Omit<Cell, 'last'>) => Promise<{ code: number; stdout: string; stderr: string } | void>;

type TargetKey = keyof AppsFactory['targets'];
const install =
  (target: TargetKey): Step =>
  async ({ device }) =>
    cli('install', '--config', device.configDir, '--src-dir', await bundleFor(factory.targets[target]));
const run: Step = async ({ device }) => cli('run', '--config', device.configDir);
const reboot: Step = async ({ device, daemon }) => {
  const result = await cli('sim', 'reboot', device.dir);
  assert.equal(result.code, 0, result.stderr);
  // The engine comes back up with the board.
  await daemon.restart();
};

interface Expected {
  readonly code: number;
  readonly state: string;
  readonly upgradeAvailable: boolean;
  readonly bootcount: number;
  readonly bootUpgradeAvailable: boolean;
  /** Which rootfs is the default deployment afterwards. */
  readonly defaultRootfs: 'a' | 'b' | 'fails' | 'firmware';
  readonly pending?: boolean;
  readonly inconsistent?: boolean;
  readonly running?: readonly string[];
}

interface MatrixCase {
  readonly name: string;
  readonly start: keyof AppsFactory['targets'];
  readonly steps: readonly Step[];
  readonly expected: Expected;
}

const forgetPreviousApps: Step = async ({ device, daemon }) => {
  // The previous target's apps vanish from the store and the engine: a rollback cannot start them again.
  await fs.rm(path.join(device.device.paths.appStore, 'heartbeat'), { recursive: true, force: true });
  const ids = daemon
    .docker('ps', '-aq')
    .split('\n')
    .filter((id) => id !== '');
  if (ids.length > 0) daemon.docker('rm', '-f', ...ids);
  for (const image of daemon.images()) daemon.docker('rmi', '-f', image.split(' ')[0]!);
};

const forgetStatus: Step = async ({ device }) => {
  await fs.rm(device.device.paths.statusFile);
};

const cases: MatrixCase[] = [
  {
    name: 'install 90: a boot firmware update waits for a reboot; nothing is installed',
    start: 'base',
    steps: [async ({ device }) => device.device.boot.setBootUpgradeAvailable(true), install('mixed')],
    expected: {
      code: 90,
      state: 'WONTGO',
      upgradeAvailable: false,
      bootcount: 0,
      bootUpgradeAvailable: true,
      defaultRootfs: 'a',
    },
  },
  {
    name: 'run 100 before the reboot: nothing changes',
    start: 'base',
    steps: [install('mixed'), run],
    expected: {
      code: 100,
      state: 'INPROGRESS',
      upgradeAvailable: true,
      bootcount: 0,
      bootUpgradeAvailable: false,
      defaultRootfs: 'b',
      pending: true,
    },
  },
  {
    name: 'run 0: booted on the new rootfs, the new apps run',
    start: 'base',
    steps: [install('mixed'), reboot, run],
    expected: {
      code: 0,
      state: 'DONE',
      upgradeAvailable: false,
      bootcount: 0,
      bootUpgradeAvailable: false,
      defaultRootfs: 'b',
      running: ['heartbeat_main_1'],
    },
  },
  {
    name: 'run 90: success, and the boot firmware was updated too',
    start: 'base',
    steps: [install('bootFirmware'), reboot, run],
    expected: {
      code: 90,
      state: 'DONE',
      upgradeAvailable: false,
      bootcount: 0,
      bootUpgradeAvailable: true,
      defaultRootfs: 'firmware',
      running: ['heartbeat_main_1'],
    },
  },
  {
    name: 'run 99: the bootloader fell back; the previous apps run; the target is recorded as failed',
    start: 'base',
    steps: [install('bootFails'), reboot, run],
    expected: {
      code: 99,
      state: 'ERROR',
      upgradeAvailable: false,
      bootcount: 0,
      bootUpgradeAvailable: false,
      defaultRootfs: 'a',
      running: ['heartbeat_main_1'],
    },
  },
  {
    name: 'run 100: booted new, apps failed; the previous deployment is the default again, pending the way back',
    start: 'base',
    steps: [install('crasherNewRootfs'), reboot, run],
    expected: {
      code: 100,
      state: 'ERROR',
      upgradeAvailable: false,
      bootcount: 0,
      bootUpgradeAvailable: false,
      defaultRootfs: 'a',
      pending: true,
    },
  },
  {
    name: 'run 100, reboot, run 99: the way back finishes with the previous apps running',
    start: 'base',
    steps: [install('crasherNewRootfs'), reboot, run, reboot, run],
    expected: {
      code: 99,
      state: 'ERROR',
      upgradeAvailable: false,
      bootcount: 0,
      bootUpgradeAvailable: false,
      defaultRootfs: 'a',
      running: ['heartbeat_main_1'],
    },
  },
  {
    name: 'run 110: rolled back, but the previous apps are unknown: INCONSISTENT',
    start: 'base',
    steps: [install('bootFails'), forgetPreviousApps, reboot, run],
    expected: {
      code: 110,
      state: 'ERROR',
      upgradeAvailable: false,
      bootcount: 0,
      bootUpgradeAvailable: false,
      defaultRootfs: 'a',
      inconsistent: true,
      running: [],
    },
  },
  {
    name: 'run 120: the apps failed and no previous target is known: INCONSISTENT',
    start: 'mixed',
    steps: [forgetStatus, install('crasher'), reboot, run],
    expected: {
      code: 120,
      state: 'ERROR',
      upgradeAvailable: false,
      bootcount: 0,
      bootUpgradeAvailable: false,
      defaultRootfs: 'a',
      inconsistent: true,
    },
  },
];

async function deviceOn(t: TestContext, target: string, bootloader: 'uboot' | 'grub'): Promise<Omit<Cell, 'last'>> {
  const daemon = await PrivateDockerd.start();
  t.after(() => daemon.stop());
  const dir = path.join(await tempDir('matrix-device'), 'device');
  await createSimDevice(dir, factory.repo, { target, dockerHost: daemon.host, testingWindowSeconds: 1, bootloader });
  return { device: await openTestDevice(dir), daemon };
}

async function rootfsOf(name: Expected['defaultRootfs']): Promise<string> {
  if (name === 'a' || name === 'b') return factory.rootfs[name];
  const targets = JSON.parse(await fs.readFile(path.join(factory.repo.dir, 'tuf', 'targets.json'), 'utf8')).signed
    .targets;
  return targets[name === 'fails' ? factory.targets.bootFails : factory.targets.bootFirmware].hashes.sha256;
}

for (const bootloader of ['uboot', 'grub'] as const) {
  describe(`the install/run matrix on ${bootloader === 'uboot' ? 'U-Boot (fw_setenv)' : 'GRUB (grub-editenv)'}`, () => {
    for (const cell of cases) {
      test(cell.name, async (t) => {
        const setup = await deviceOn(t, factory.targets[cell.start], bootloader);
        let last: { code: number; stdout: string; stderr: string } | undefined;
        for (const step of cell.steps) last = (await step(setup)) ?? last;
        assert.ok(last !== undefined);
        const { device, daemon } = setup;
        const expected = cell.expected;
        assert.equal(last.code, expected.code, `stdout: ${last.stdout}\nstderr: ${last.stderr}`);

        const status = JSON.parse(await fs.readFile(device.device.paths.statusFile, 'utf8'));
        assert.equal(status.state, expected.state);
        assert.equal(status.pending !== null, expected.pending ?? false, 'pending');
        assert.equal(status.inconsistent !== null, expected.inconsistent ?? false, 'inconsistent');
        assert.equal((await fs.readFile(device.device.paths.updateStateFile, 'utf8')).trim(), expected.state);
        const inconsistentFile = await fs.readFile(device.device.paths.inconsistentFile, 'utf8').catch(() => null);
        assert.equal(inconsistentFile !== null, expected.inconsistent ?? false, 'the inconsistent plain file');
        if (['WONTGO', 'ERROR'].includes(expected.state)) assert.ok(status.log.length > 0, 'a log snippet');

        const env = await device.device.boot.env.read();
        const vars = device.device.boot.vars;
        assert.equal(env[vars.upgradeAvailable], expected.upgradeAvailable ? '1' : '0', vars.upgradeAvailable);
        assert.equal(env[vars.bootCounter], String(expected.bootcount), vars.bootCounter);
        assert.equal(
          env[vars.bootUpgradeAvailable],
          expected.bootUpgradeAvailable ? '1' : '0',
          vars.bootUpgradeAvailable,
        );
        assert.equal(vars.bootCounter, bootloader === 'uboot' ? 'bootcount' : 'boot_counter');

        const report = await cli('status', '--config', device.configDir, '--json');
        assert.equal(report.code, 0, report.stderr);
        assertStatusSchema(JSON.parse(report.stdout));

        const [defaultDeployment] = await device.device.sysroot.deployments();
        assert.equal(defaultDeployment!.commit, await rootfsOf(expected.defaultRootfs), 'the default deployment');
        if (expected.running !== undefined) {
          assert.deepEqual(
            daemon.running().map((line) => line.split(' ')[0]),
            expected.running,
          );
        }
      });
    }
  });
}

describe('failed-target memory and repair (U-Boot)', () => {
  test('a target that failed is refused (77) unless --force; a pending install blocks another (30)', async (t) => {
    const setup = await deviceOn(t, factory.targets.base, 'uboot');
    const { device } = setup;
    for (const step of [install('bootFails'), reboot, run]) await step(setup);
    const again = await cli(
      'install',
      '--config',
      device.configDir,
      '--src-dir',
      await bundleFor(factory.targets.bootFails),
    );
    assert.equal(again.code, 77, again.stderr);
    assert.match(again.stderr, /failed on this device/);
    const forced = await cli(
      'install',
      '--config',
      device.configDir,
      '--src-dir',
      await bundleFor(factory.targets.bootFails),
      '--force',
    );
    assert.equal(forced.code, 100, forced.stderr);
    const blocked = await cli(
      'install',
      '--config',
      device.configDir,
      '--src-dir',
      await bundleFor(factory.targets.mixed),
    );
    assert.equal(blocked.code, 30, blocked.stderr);
  });

  test('an inconsistent device takes its own target again, and a successful run clears the flag', async (t) => {
    const setup = await deviceOn(t, factory.targets.base, 'uboot');
    for (const step of [install('bootFails'), forgetPreviousApps, reboot, run]) await step(setup);
    const { device } = setup;
    await fs.access(device.device.paths.inconsistentFile);
    const repair = await cli(
      'install',
      '--config',
      device.configDir,
      '--src-dir',
      await bundleFor(factory.targets.base),
    );
    assert.equal(repair.code, 101, repair.stderr);
    const ran = await cli('run', '--config', device.configDir);
    assert.equal(ran.code, 0, ran.stderr);
    await assert.rejects(fs.access(device.device.paths.inconsistentFile));
    const status = JSON.parse(await fs.readFile(device.device.paths.statusFile, 'utf8'));
    assert.equal(status.inconsistent, null);
    assert.deepEqual(
      setup.daemon.running().map((line) => line.split(' ')[0]),
      ['heartbeat_main_1'],
    );
  });

  test('run --no-wait returns 105 in TESTING; a later run finishes the testing window and commits', async (t) => {
    const setup = await deviceOn(t, factory.targets.base, 'uboot');
    const { device } = setup;
    assert.equal((await install('heartbeatV2')(setup))!.code, 101);
    const early = await cli('run', '--config', device.configDir, '--no-wait', '--json');
    assert.equal(early.code, 105, early.stderr);
    const testing = JSON.parse(await fs.readFile(device.device.paths.statusFile, 'utf8'));
    assert.equal(testing.state, 'TESTING');
    assert.equal(testing.progress?.unit, 'seconds-left');
    assert.ok(testing.pending.window.until);
    const done = await cli('run', '--config', device.configDir);
    assert.equal(done.code, 0, done.stderr);
    assert.equal(JSON.parse(await fs.readFile(device.device.paths.statusFile, 'utf8')).state, 'UPDATED');
  });
});
