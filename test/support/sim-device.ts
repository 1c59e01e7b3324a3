import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { loadDeviceConfig, type DeviceConfig } from '../../src/device/config.js';
import { openDevice, type Device, type ToolDevice } from '../../src/device/device.js';
import { createSimDevice, simConfigDir, type SimDeviceOptions } from '../../src/sim/sim-device.js';
import type { TestFactory } from './factory.js';
import { tempDir } from './factory.js';
import { cli } from './cli.js';
import { assertStatusSchema } from './status-schema.js';
import { hashTree } from './tree-hash.js';

export interface TestDevice {
  readonly dir: string;
  readonly configDir: string;
  readonly config: DeviceConfig;
  readonly device: ToolDevice;
  /**
   * Hashes everything that makes up the device: sysroot (refs, objects, deployments, boot entries), bootloader env,
   * storage (trusted metadata), cmdline and the volatile directory. Left out: the status record and its journal,
   * which a refusal may change, and the per-boot caches (booted deployment, boot id).
   */
  fingerprint(extraExcludes?: readonly string[]): Promise<string>;
}

export async function makeDevice(
  factory: TestFactory,
  target: string,
  options: Partial<SimDeviceOptions> = {},
): Promise<TestDevice> {
  const dir = path.join(await tempDir('device'), 'device');
  await createSimDevice(dir, factory.repo, { target, ...options });
  return openTestDevice(dir);
}

export async function openTestDevice(dir: string): Promise<TestDevice> {
  const configDir = simConfigDir(dir);
  const config = await loadDeviceConfig([configDir]);
  const device = openDevice(config);
  return {
    dir,
    configDir,
    config,
    device,
    fingerprint: (extraExcludes: readonly string[] = []) =>
      hashTree(dir, [...notDeviceState(dir, device), ...extraExcludes]),
  };
}

/**
 * What a fingerprint leaves out: the status record (the JSON and its plain-file twins), which a refusal may change,
 * and the per-boot cache of the booted deployment.
 */
export function notDeviceState(dir: string, device: Device): string[] {
  return [
    path.relative(dir, device.paths.statusFile),
    path.relative(dir, device.paths.updateStateFile),
    path.relative(dir, device.paths.inconsistentFile),
    path.join('run', 'aktualizr-session', 'ferry-booted.json'),
    path.relative(dir, device.paths.bootIdFile),
    // The journal is the status record's log of steps: a refusal found while copying (a blob that fails its digest)
    // has begun one.
    path.relative(dir, device.paths.journalFile),
  ];
}

/** `ferry status --json` of a device, checked against schemas/status.schema.json. */
export async function statusOf(device: TestDevice): Promise<Record<string, any>> {
  const result = await cli('status', '--config', device.configDir, '--json');
  assert.equal(result.code, 0, result.stderr);
  const parsed = JSON.parse(result.stdout);
  assertStatusSchema(parsed);
  return parsed;
}

/**
 * Asserts that an install is refused with `code`, that it says why in one line on stderr that matches `reason`,
 * that the status record shows the WONTGO, and that nothing else on the device changed.
 */
export async function assertRefused(
  device: TestDevice,
  bundle: string,
  code: number,
  reason: RegExp,
  extraArgs: readonly string[] = [],
): Promise<void> {
  const before = await device.fingerprint();
  const result = await cli('install', '--config', device.configDir, '--src-dir', bundle, ...extraArgs);
  assert.equal(result.code, code, `stdout: ${result.stdout}\nstderr: ${result.stderr}`);
  const lines = result.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got: ${result.stderr}`);
  assert.match(lines[0]!, reason);
  assert.equal(await device.fingerprint(), before, 'the device changed after a refusal');
  const recorded = await statusOf(device);
  assert.equal(recorded['state'], 'WONTGO');
  assert.equal(recorded['lastError'].exitCode, code);
  assert.equal(recorded['pending'], null);
}

/** One file of the device's trusted TUF metadata, parsed. */
export async function trustedMetadata(device: TestDevice, file: string): Promise<{ signed: Record<string, any> }> {
  return JSON.parse(await fs.readFile(path.join(device.device.paths.trustedMetadataDir, file), 'utf8'));
}

/**
 * Asserts that an install is refused with `code` before it writes anything at all: one line on stderr matching
 * `reason`, and the whole device directory, status record included, byte for byte as it was.
 */
export async function assertRefusedUntouched(
  device: TestDevice,
  bundle: string,
  code: number,
  reason: RegExp,
): Promise<void> {
  const before = await hashTree(device.dir);
  const result = await cli('install', '--config', device.configDir, '--src-dir', bundle);
  assert.equal(result.code, code, `stdout: ${result.stdout}\nstderr: ${result.stderr}`);
  const lines = result.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got: ${result.stderr}`);
  assert.match(lines[0]!, reason);
  assert.equal(await hashTree(device.dir), before, 'the device changed after a refusal');
}
