import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { AppStore } from '../apps/device/app-store.js';
import { DockerEngine } from '../apps/device/docker-engine.js';
import type { OstreeRepo } from '../ostree/ostree-repo.js';
import { Sysroot } from '../ostree/sysroot.js';
import { pathExists } from '../util/atomic-file.js';
import { FerryError, describeCause } from '../errors.js';
import { bootControlFor, type BootControl, type BootFlags } from './bootloader-env.js';
import { readBootedDeployment, type BootedDeployment } from './booted-deployment.js';
import { CallbackProgram, type CallbackPort } from './callback-program.js';
import type { DeviceConfig } from './config.js';
import { devicePaths, type DevicePaths } from './paths.js';
import { StatusFile } from './status-file.js';
import { HealthCheckDir, type HealthChecksPort } from './health-checks.js';

/**
 * The ports a lifecycle command works through, each the part of an adapter that install, run and status use. The
 * adapters (the ostree and docker CLIs, the bootloader's env tools) fit them, and so does a fake device in a test of
 * decisions: the commands never see the concrete classes.
 */

/** The sysroot's OSTree repository: what install pulls into and checks. */
export interface OstreeRepoPort extends Pick<
  OstreeRepo,
  'path' | 'hasCommitObject' | 'resolve' | 'pullLocal' | 'applyStaticDelta' | 'fileObjectsUnder'
> {}

/** The OSTree sysroot: its deployments, and deploying or removing one. */
export interface SysrootPort extends Pick<Sysroot, 'deployments' | 'deploy' | 'undeploy'> {
  readonly repo: OstreeRepoPort;
}

/** The container engine: images, compose projects and their containers. */
export interface ContainerEnginePort extends Pick<
  DockerEngine,
  | 'probe'
  | 'ensureReachable'
  | 'hasImage'
  | 'loadImage'
  | 'up'
  | 'down'
  | 'removeProjectContainers'
  | 'projects'
  | 'containers'
  | 'logTail'
> {}

/** Boot counting through the bootloader env: the trial of a new deployment, its end, and the flags. */
export interface BootControlPort extends Pick<
  BootControl,
  'description' | 'flags' | 'startTrial' | 'endTrial' | 'resetBootCount'
> {}

/** The adapters a lifecycle command works through, composed here and nowhere else. */
export interface Device {
  readonly config: DeviceConfig;
  readonly paths: DevicePaths;
  readonly sysroot: SysrootPort;
  readonly boot: BootControlPort;
  readonly statusFile: StatusFile;
  readonly appStore: AppStore;
  readonly engine: ContainerEnginePort;
  /** `[pacman] callback_program`, told of each step of an update. */
  readonly callback: CallbackPort;
  readonly healthChecks: HealthChecksPort;
}

/** A device on its real tools: the simulator and the tests reach past the ports (the env's variables, a boot). */
export interface ToolDevice extends Device {
  readonly sysroot: Sysroot;
  readonly boot: BootControl;
  readonly engine: DockerEngine;
}

export interface OpenDeviceOptions {
  /** Where a warning goes at once (a callback program that failed): stderr, for a command. */
  readonly warn?: (line: string) => void;
}

export function openDevice(config: DeviceConfig, options: OpenDeviceOptions = {}): ToolDevice {
  const paths = devicePaths(config);
  return {
    config,
    paths,
    sysroot: new Sysroot(config.sysroot, config.os),
    boot: bootControlFor(config.bootloader),
    statusFile: new StatusFile(paths.statusFile, paths.updateStateFile, paths.inconsistentFile),
    appStore: new AppStore(paths.appStore),
    engine: new DockerEngine(config.dockerHost, config.composeBin),
    healthChecks: new HealthCheckDir(config.healthChecksDir, config.healthCheckTimeoutMs),
    callback: new CallbackProgram({
      program: config.callbackProgram,
      timeoutMs: config.callbackTimeoutMs,
      // ferry keeps no current-target file of aktualizr-lite's form: its status record names the current target.
      currentTargetFile: paths.statusFile,
      ...(options.warn === undefined ? {} : { warn: options.warn }),
    }),
  };
}

export function readBooted(device: Device): Promise<BootedDeployment> {
  return readBootedDeployment({
    cmdlineFile: device.config.cmdlineFile,
    sysroot: device.config.sysroot,
    volatileDir: device.paths.volatileDir,
  });
}

export function rebootSentinelPresent(device: Device): Promise<boolean> {
  return pathExists(device.paths.rebootSentinel);
}

export async function writeRebootSentinel(device: Device): Promise<void> {
  await fs.mkdir(device.paths.volatileDir, { recursive: true });
  await fs.writeFile(device.paths.rebootSentinel, `${new Date().toISOString()}\n`);
}

export async function removeRebootSentinel(device: Device): Promise<void> {
  await fs.rm(device.paths.rebootSentinel, { force: true });
}

/**
 * An id for the current boot, kept in the volatile directory: a testing window begun in an earlier boot (before a
 * power cut) is not trusted to have watched the apps that run now.
 */
export async function currentBootId(device: Device): Promise<string> {
  try {
    return (await fs.readFile(device.paths.bootIdFile, 'utf8')).trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const id = randomUUID();
  await fs.mkdir(device.paths.volatileDir, { recursive: true });
  await fs.writeFile(device.paths.bootIdFile, `${id}\n`, { flag: 'wx' });
  return id;
}

/** The bootloader's flags; an env that cannot be read is a device-state refusal, never a guess. */
export async function readBootFlags(device: Device): Promise<BootFlags> {
  try {
    return await device.boot.flags();
  } catch (error) {
    throw new FerryError(
      'DEVICE_STATE_UNREADABLE',
      `cannot read the ${device.boot.description}: ${describeCause(error)}`,
      { cause: error },
    );
  }
}
