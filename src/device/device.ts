import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { AppStore } from '../apps/app-store.js';
import { DockerEngine } from '../apps/docker-engine.js';
import { Sysroot } from '../ostree/sysroot.js';
import { pathExists } from '../util/atomic-file.js';
import { FerryError, describeCause } from '../errors.js';
import { bootControlFor, type BootControl, type BootFlags } from './bootloader-env.js';
import { readBootedDeployment, type BootedDeployment } from './booted-deployment.js';
import type { DeviceConfig } from './config.js';
import { devicePaths, type DevicePaths } from './paths.js';
import { StatusFile } from './status-file.js';

/** The adapters a lifecycle command works through. Tests build the same thing around a simulated device. */
export interface Device {
  readonly config: DeviceConfig;
  readonly paths: DevicePaths;
  readonly sysroot: Sysroot;
  /** Boot counting through the bootloader's env tools. */
  readonly boot: BootControl;
  readonly statusFile: StatusFile;
  readonly appStore: AppStore;
  readonly engine: DockerEngine;
}

export function openDevice(config: DeviceConfig): Device {
  const paths = devicePaths(config);
  return {
    config,
    paths,
    sysroot: new Sysroot(config.sysroot, config.os),
    boot: bootControlFor(config.bootloader),
    statusFile: new StatusFile(paths.statusFile, paths.updateStateFile, paths.inconsistentFile),
    appStore: new AppStore(paths.appStore),
    engine: new DockerEngine(config.dockerHost),
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
