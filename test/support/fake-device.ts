import { promises as fs } from 'node:fs';
import path from 'node:path';
import { AppStore } from '../../src/apps/device/app-store.js';
import type { ContainerState } from '../../src/apps/device/docker-engine.js';
import type { CallbackCall, CallbackPort } from '../../src/device/callback-program.js';
import type { DeviceConfig } from '../../src/device/config.js';
import type {
  BootControlPort,
  ContainerEnginePort,
  Device,
  OstreeRepoPort,
  SysrootPort,
} from '../../src/device/device.js';
import { devicePaths } from '../../src/device/paths.js';
import { StatusFile, type DeviceStatus } from '../../src/device/status-file.js';
import type { Deployment } from '../../src/ostree/sysroot.js';
import { tempDir } from './factory.js';
import type { CheckPhase, HealthChecksPort, HealthChecksResult } from '../../src/device/health-checks.js';

/**
 * A device whose ports are fakes held in memory: deployments, boot flags and an engine that answers or not. For
 * tests of decisions, which run in milliseconds with no ostree, bootloader tools or dockerd; the status record, the
 * journal and the booted deployment (the kernel command line and its symlink) are real files in a temp directory.
 */
export interface FakeDevice extends Device {
  readonly sysroot: FakeSysroot;
  readonly boot: FakeBoot;
  readonly engine: FakeEngine;
  readonly callback: FakeCallback;
  readonly healthChecks: FakeHealthChecks;
}

/** A callback program that records each call, and answers with `problem` (undefined: it succeeded). */
export class FakeCallback implements CallbackPort {
  readonly calls: CallbackCall[] = [];
  problem: string | undefined;

  async call(call: CallbackCall): Promise<string | undefined> {
    this.calls.push(call);
    return this.problem;
  }
}

export class FakeSysroot implements SysrootPort {
  /** Deployment 0 is the default. */
  commits: string[] = [];
  readonly repo: OstreeRepoPort;

  constructor(
    private readonly root: string,
    readonly os: string,
  ) {
    const refuse = () => Promise.reject(new Error('the fake device holds no OSTree repository'));
    this.repo = {
      path: path.join(root, 'ostree', 'repo'),
      hasCommitObject: async (commit) => this.commits.includes(commit),
      resolve: async (commit) => commit,
      pullLocal: refuse,
      applyStaticDelta: refuse,
      fileObjectsUnder: async () => [],
    };
  }

  async deployments(): Promise<Deployment[]> {
    return this.commits.map((commit, index) => ({ index, os: this.os, commit, serial: 0 }));
  }

  async deploy(commit: string): Promise<void> {
    this.commits = [commit, ...this.commits.filter((other) => other !== commit)];
  }

  async undeploy(index: number): Promise<void> {
    this.commits = this.commits.filter((_, at) => at !== index);
  }

  /** Boots `commit`: the kernel command line names its deployment, through a symlink as ostree-prepare-root reads it. */
  async boot(commit: string, volatileDir: string): Promise<void> {
    const deployDir = path.join(this.root, 'ostree', 'deploy', this.os, 'deploy', `${commit}.0`);
    const link = path.join(this.root, 'ostree', 'boot.1', this.os, commit, '0');
    await fs.mkdir(deployDir, { recursive: true });
    await fs.mkdir(path.dirname(link), { recursive: true });
    await fs.rm(link, { force: true });
    await fs.symlink(deployDir, link);
    await fs.writeFile(
      path.join(this.root, 'cmdline'),
      `root=/dev/fake ostree=/ostree/boot.1/${this.os}/${commit}/0\n`,
    );
    // A new boot: the volatile directory (a tmpfs) starts empty.
    await fs.rm(volatileDir, { recursive: true, force: true });
  }
}

export class FakeBoot implements BootControlPort {
  readonly description = 'fake bootloader env';
  upgradeAvailable = false;
  bootcount = 0;
  bootUpgradeAvailable = false;

  async flags() {
    return {
      upgradeAvailable: this.upgradeAvailable,
      bootcount: this.bootcount,
      bootUpgradeAvailable: this.bootUpgradeAvailable,
      bootlimit: 3,
      rolledBack: false,
    };
  }

  async startTrial(): Promise<void> {
    this.upgradeAvailable = true;
    this.bootcount = 0;
  }

  async endTrial(): Promise<void> {
    this.upgradeAvailable = false;
    this.bootcount = 0;
  }

  async resetBootCount(): Promise<void> {
    this.bootcount = 0;
  }
}

/** An engine with no containers: it answers, or (reachable = false) it does not. */
export class FakeEngine implements ContainerEnginePort {
  reachable = true;
  private readonly unused = () => Promise.reject(new Error('the fake engine runs no apps'));

  async probe() {
    return this.reachable
      ? ({ reachable: true } as const)
      : ({ reachable: false, reason: 'the fake engine is down', cause: undefined } as const);
  }

  async ensureReachable(): Promise<void> {
    if (!this.reachable) throw new Error('the fake engine is down');
  }

  hasImage = async () => false;
  loadImage = this.unused;
  up = this.unused;
  down = this.unused;
  removeProjectContainers = this.unused;
  projects = async (): Promise<string[]> => [];
  containers = async (): Promise<ContainerState[]> => [];
  logTail = async (): Promise<string[]> => [];
}

/** Health checks that pass, or answer `result`; every run is recorded with its phase and target. */
export class FakeHealthChecks implements HealthChecksPort {
  result: HealthChecksResult = { ok: true, log: [] };
  readonly runs: Array<{ phase: CheckPhase; target: string }> = [];

  async run(phase: CheckPhase, target: { name: string }): Promise<HealthChecksResult> {
    this.runs.push({ phase, target: target.name });
    return this.result;
  }
}

export async function makeFakeDevice(status?: DeviceStatus): Promise<FakeDevice> {
  const root = await tempDir('fake-device');
  const config: DeviceConfig = {
    hardwareId: 'board',
    tags: ['main'],
    os: 'fake-os',
    sysroot: root,
    storagePath: path.join(root, 'storage'),
    bootloader: { kind: 'grub', grubEnvFile: path.join(root, 'grubenv') },
    rebootSentinelDir: path.join(root, 'run'),
    rebootSentinelName: 'need-reboot',
    cmdlineFile: path.join(root, 'cmdline'),
    production: false,
    dockerHost: 'unix:///nonexistent',
    testingWindowMs: 0,
    composeBin: 'docker-compose',
    callbackProgram: undefined,
    callbackTimeoutMs: 60_000,
    healthChecksDir: path.join(root, 'check.d'),
    healthCheckTimeoutMs: 60_000,
    exitCodes: 'ferry',
    sources: [],
  };
  const paths = devicePaths(config);
  const device: FakeDevice = {
    config,
    paths,
    sysroot: new FakeSysroot(root, config.os),
    boot: new FakeBoot(),
    statusFile: new StatusFile(paths.statusFile, paths.updateStateFile, paths.inconsistentFile),
    appStore: new AppStore(paths.appStore),
    engine: new FakeEngine(),
    callback: new FakeCallback(),
    healthChecks: new FakeHealthChecks(),
  };
  if (status !== undefined) await device.statusFile.save(status);
  return device;
}
