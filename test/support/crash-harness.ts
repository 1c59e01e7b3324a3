import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { hexOf } from '../../src/apps/format/digest.js';
import { exportBundle } from '../../src/bundle/workstation/export.js';
import { faultPointName, STEPS, STEP_NAMES, type StepPath, type UpdateKind } from '../../src/lifecycle/steps.js';
import { copySimDevice, createSimDevice, startSimApps } from '../../src/sim/sim-device.js';
import { buildAppsFactory, type AppsFactory } from './apps-factory.js';
import { cli, ferryProcess, type ProcessResult } from './cli.js';
import { PrivateDockerd } from './dockerd.js';
import { TAG, tempDir } from './factory.js';
import { openTestDevice, statusOf, type TestDevice } from './sim-device.js';

/**
 * The crash harness: drive an update through its normal sequence of commands with `FERRY_CRASH_AT` naming one
 * step, so that ferry kills itself there; power-cycle the device (a simulated reboot, and the engine restarted);
 * follow the documented recovery sequence; then check that the device is sound.
 */

export type Action =
  | { readonly do: 'install'; readonly expect: number; readonly crashAt?: string }
  | { readonly do: 'run'; readonly expect: number }
  | { readonly do: 'power-cycle' }
  | { readonly do: 'restart-engine' };

export interface Scenario {
  readonly name: string;
  readonly path: StepPath;
  readonly kind: UpdateKind;
  readonly from: string;
  readonly to: string;
  /** The commands of the update when nothing goes wrong. */
  readonly sequence: readonly Action[];
  /** A bad target must end on the old one; a good one may end on either, and then installs again. */
  readonly ends: 'old' | 'old-or-new';
}

export interface CrashPoint {
  readonly step: string;
  readonly point: string;
}

/** Every fault point of the steps the scenario's path takes for its kind of update, from the one table of steps. */
export function crashPointsOf(scenario: Scenario): CrashPoint[] {
  return STEP_NAMES.filter((step) => {
    const info = STEPS[step];
    return info.path === scenario.path && (info.kinds as readonly string[]).includes(scenario.kind);
  }).flatMap((step) => (['intent', 'done'] as const).map((moment) => ({ step, point: faultPointName(step, moment) })));
}

/** The codes after which the recovery sequence stops: done, undone (install again), rolled back. */
const SETTLED = new Set([0, 32, 99]);

/**
 * How many crash points of a file run at once, each on its own device and its own engine. Most of a point's time is
 * spent waiting (an engine stopping and starting, a testing window, containers coming back), not computing.
 */
export const CRASH_ENGINES = 3;

/** A device under test and the engine its apps run on, which no other test uses meanwhile. */
export interface CrashDevice extends TestDevice {
  readonly daemon: PrivateDockerd;
}

/** A rig for one test file: the apps factory, and private dockerds stopped when the file is done. */
export async function startCrashRig(after: (fn: () => Promise<void>) => void): Promise<CrashRig> {
  const factory = await buildAppsFactory();
  const daemons: PrivateDockerd[] = [];
  after(async () => {
    await Promise.all(daemons.map((daemon) => daemon.stop()));
  });
  for (let count = 0; count < CRASH_ENGINES; count++) daemons.push(await PrivateDockerd.start());
  return new CrashRig(factory, daemons);
}

export class CrashRig {
  private readonly bundles = new Map<string, Promise<string>>();
  /** The starting device of each target, built once and copied for every test that starts there. */
  private readonly templates = new Map<string, Promise<string>>();
  /** Writes to the factory repository (exports, device registrations) one at a time. */
  private factoryQueue: Promise<unknown> = Promise.resolve();
  private readonly idle: PrivateDockerd[];
  private readonly waiting: Array<(daemon: PrivateDockerd) => void> = [];

  constructor(
    readonly factory: AppsFactory,
    daemons: readonly PrivateDockerd[],
  ) {
    this.idle = [...daemons];
  }

  private inFactory<T>(work: () => Promise<T>): Promise<T> {
    const result = this.factoryQueue.then(work);
    this.factoryQueue = result.catch(() => undefined);
    return result;
  }

  bundleFor(target: string): Promise<string> {
    let bundle = this.bundles.get(target);
    if (bundle === undefined) {
      bundle = this.inFactory(async () => {
        const destination = path.join(await tempDir('crash-bundle'), 'bundle');
        await exportBundle(this.factory.repo, {
          targetName: target,
          destination,
          tag: TAG,
          type: 'ci',
          expiresInDays: 30,
        });
        return destination;
      });
      this.bundles.set(target, bundle);
    }
    return bundle;
  }

  /**
   * A new device on `target` with its apps up, on an engine of its own until the test ends, emptied of the last
   * device's containers and volumes. The device is a copy of one built once per target (the same for every crash
   * point), and its apps are started again from the copy's own store: what an engine held is not in the directory.
   */
  async freshDevice(t: TestContext, target: string): Promise<CrashDevice> {
    const template = await this.templateOf(target);
    const daemon = await this.takeEngine();
    t.after(() => this.giveBack(daemon));
    daemon.empty();
    const dir = path.join(await tempDir('crash-device'), 'device');
    await copySimDevice(template, dir, { dockerHost: daemon.host });
    await startSimApps(dir);
    return { ...(await openTestDevice(dir)), daemon };
  }

  private templateOf(target: string): Promise<string> {
    let template = this.templates.get(target);
    if (template === undefined) {
      // The engine is taken outside the factory's turn: nothing in that queue waits for an engine, so no two wait on
      // each other.
      template = (async () => {
        const daemon = await this.takeEngine();
        try {
          daemon.empty();
          const dir = path.join(await tempDir('crash-template'), 'device');
          await this.inFactory(() =>
            createSimDevice(dir, this.factory.repo, { target, dockerHost: daemon.host, testingWindowSeconds: 1 }),
          );
          return dir;
        } finally {
          this.giveBack(daemon);
        }
      })();
      this.templates.set(target, template);
    }
    return template;
  }

  private takeEngine(): Promise<PrivateDockerd> {
    const daemon = this.idle.pop();
    if (daemon !== undefined) return Promise.resolve(daemon);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private giveBack(daemon: PrivateDockerd): void {
    const next = this.waiting.shift();
    if (next !== undefined) next(daemon);
    else this.idle.push(daemon);
  }

  async discard(device: CrashDevice): Promise<void> {
    spawnSync('chattr', ['-R', '-i', path.dirname(device.dir)], { stdio: 'ignore' });
    await fs.rm(path.dirname(device.dir), { recursive: true, force: true });
  }

  /** A power cut and the power back: the bootloader picks a deployment, the engine starts again. */
  async powerCycle(device: CrashDevice): Promise<void> {
    const reboot = await cli('sim', 'reboot', device.dir);
    assert.equal(reboot.code, 0, `the simulated device did not boot: ${reboot.stderr}`);
    await device.daemon.restart();
  }

  async ferry(
    device: CrashDevice,
    command: 'install' | 'run',
    to: string,
    env: Record<string, string>,
  ): Promise<ProcessResult> {
    const args =
      command === 'install'
        ? ['install', '--config', device.configDir, '--src-dir', await this.bundleFor(to)]
        : ['run', '--config', device.configDir];
    return ferryProcess(args, env);
  }

  /**
   * Plays the scenario's sequence with `crashAt` set, up to the command that kills itself there. Every command
   * before it must end as the sequence says; a sequence that never reaches the point fails the test.
   */
  async playUntilCrash(device: CrashDevice, scenario: Scenario, crashAt: string): Promise<string[]> {
    await this.bundleFor(scenario.to);
    const trail: string[] = [];
    for (const action of scenario.sequence) {
      if (action.do === 'power-cycle') {
        await this.powerCycle(device);
        trail.push('power-cycle');
        continue;
      }
      if (action.do === 'restart-engine') {
        await device.daemon.restart();
        trail.push('restart-engine');
        continue;
      }
      const ownCrash = action.do === 'install' ? action.crashAt : undefined;
      const result = await this.ferry(device, action.do, scenario.to, { FERRY_CRASH_AT: ownCrash ?? crashAt });
      trail.push(`${action.do} → ${result.signal ?? result.code}`);
      if (result.signal === 'SIGKILL' && ownCrash === undefined) return trail;
      if (ownCrash !== undefined) {
        assert.equal(result.signal, 'SIGKILL', `the set-up crash at ${ownCrash} did not happen: ${trail.join(', ')}`);
        continue;
      }
      assert.equal(result.code, action.expect, `${trail.join(', ')}\n${result.stdout}${result.stderr}`);
    }
    assert.fail(`the sequence never reached ${crashAt}: ${trail.join(', ')}`);
  }

  /**
   * The recovery sequence of the README: `run` after every boot, and act on its code: 100 reboot and run again,
   * 105 run again after the testing window; 0, 32 (install again) and 99 (rolled back) settle it.
   */
  async recover(device: CrashDevice, to: string): Promise<number[]> {
    const codes: number[] = [];
    for (let round = 0; round < 8; round++) {
      const result = await this.ferry(device, 'run', to, {});
      assert.equal(result.signal, null);
      codes.push(result.code);
      if (SETTLED.has(result.code)) return codes;
      if (result.code === 100) await this.powerCycle(device);
      else if (result.code !== 105) assert.fail(`run exited ${result.code} during recovery: ${result.stderr}`);
    }
    return assert.fail(`recovery did not settle: ${codes.join(', ')}`);
  }

  /** `name image` of the containers a target's apps run. */
  expectedContainers(target: string): string[] {
    const images = this.factory.images;
    const heartbeat = (digest: string) => `heartbeat_main_1 ferry.local/test/heartbeat:sha256-${hexOf(digest)}`;
    const byTarget: Record<string, string[]> = {
      [this.factory.targets.base]: [heartbeat(images.v1)],
      [this.factory.targets.mixed]: [heartbeat(images.v2)],
      [this.factory.targets.heartbeatV2]: [heartbeat(images.v2)],
    };
    const expected = byTarget[target];
    assert.ok(expected, `no expected containers for ${target}`);
    return expected;
  }

  /** The apps come back after a boot on their own (restart policy), or fail the check after 20 s. */
  async waitForContainers(daemon: PrivateDockerd, expected: readonly string[]): Promise<void> {
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (JSON.stringify(daemon.running()) === JSON.stringify(expected)) return;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    assert.deepEqual(daemon.running(), expected);
  }

  /**
   * The device is sound: its status parses with nothing pending; it runs exactly the old or the new target (rootfs
   * and apps); its default deployment is what it boots, also after one more power cycle; its repo passes fsck; the
   * app store holds the running apps; the trusted metadata parses; the apps' data volume survived.
   */
  async assertSound(device: CrashDevice, scenario: Scenario, allowed: readonly string[]): Promise<string> {
    const status = await statusOf(device);
    assert.equal(status['pending'], null, 'nothing is pending after recovery');
    assert.equal(status['inconsistent'], null, 'the device is not inconsistent');
    const current = status['current']?.name as string;
    assert.ok(allowed.includes(current), `the device runs "${current}", not one of ${allowed.join(', ')}`);
    assert.equal(status['booted'].target, current, 'the booted rootfs is the current target');
    const containers = this.expectedContainers(current);
    assert.deepEqual(device.daemon.running(), containers, 'the apps of the current target run');

    await this.powerCycle(device);
    const deployments = await device.device.sysroot.deployments();
    const again = await statusOf(device);
    assert.equal(again['booted'].commit, deployments[0]!.commit, 'the default deployment boots');
    assert.equal(again['booted'].target, current);
    const run = await this.ferry(device, 'run', scenario.to, {});
    assert.equal(run.code, 0, `run after one more power cycle: ${run.stderr}`);
    await this.waitForContainers(device.daemon, containers);

    const fsck = spawnSync('ostree', ['fsck', `--repo=${path.join(device.config.sysroot, 'ostree', 'repo')}`], {
      encoding: 'utf8',
    });
    assert.equal(fsck.status, 0, `ostree fsck: ${fsck.stderr}`);
    for (const [name, pin] of Object.entries(status['current'].apps as Record<string, { digest: string }>)) {
      assert.ok(await device.device.appStore.hasApp(name, pin as never), `app ${name} is in the store`);
    }
    // root.json is always there; the others once an install has promoted them, and then whole.
    for (const file of await fs.readdir(device.device.paths.trustedMetadataDir)) {
      JSON.parse(await fs.readFile(path.join(device.device.paths.trustedMetadataDir, file), 'utf8'));
    }
    await fs.access(path.join(device.device.paths.trustedMetadataDir, 'root.json'));
    const volumes = device.daemon.docker('volume', 'ls', '-q').split('\n');
    assert.ok(volumes.includes('heartbeat_data'), `the app's data volume survived: ${volumes.join(' ')}`);
    return current;
  }

  /** After the recovery, the update itself still goes through: nothing refuses it forever. */
  async installAgain(device: CrashDevice, scenario: Scenario): Promise<void> {
    const install = await this.ferry(device, 'install', scenario.to, {});
    const current = (await statusOf(device))['current']?.name;
    if (current === scenario.to) {
      assert.equal(install.code, 0, install.stderr);
    } else {
      assert.ok([100, 101].includes(install.code), `install again: ${install.code} ${install.stderr}`);
      if (install.code === 100) await this.powerCycle(device);
      else await device.daemon.restart();
      const run = await this.ferry(device, 'run', scenario.to, {});
      assert.equal(run.code, 0, run.stderr);
    }
    assert.equal((await statusOf(device))['current'].name, scenario.to);
    assert.deepEqual(device.daemon.running(), this.expectedContainers(scenario.to));
    assert.deepEqual(await leftovers(device), [], 'nothing of the interrupted commands is left behind');
  }
}

/** Scratch that a finished install must have cleared: staging directories, trash, temp files. */
async function leftovers(device: TestDevice): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
      if (/^\.(apps-staging-|bundle-|trash-)|\.tmp$/.test(entry.name)) found.push(path.join(dir, entry.name));
      else if (entry.isDirectory()) await walk(path.join(dir, entry.name));
    }
  };
  await walk(device.config.storagePath);
  return found;
}

/** The steps a command sequence took, in order, as its journal recorded them. */
export async function journaledSteps(device: TestDevice): Promise<string[]> {
  const text = await fs.readFile(device.device.paths.journalFile, 'utf8');
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as { event: string; step?: string })
    .filter((entry) => entry.event === 'intent')
    .map((entry) => entry.step!);
}
