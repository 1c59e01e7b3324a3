import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { FerryError, describeCause } from '../errors.js';
import { EXIT_CODE_TABLES, type ExitCodeTable } from '../exit-codes.js';

/**
 * The device configuration, from sota.toml-compatible TOML. The keys aktualizr-lite knows keep their names
 * ([provision], [pacman], [storage], [bootloader]); ferry's own keys live under [ferry].
 */
export interface DeviceConfig {
  readonly hardwareId: string;
  readonly tags: readonly string[];
  readonly os: string;
  readonly sysroot: string;
  readonly storagePath: string;
  readonly bootloader: BootloaderConfig;
  /** A volatile directory (tmpfs on hardware): the reboot sentinel and per-boot facts live here. */
  readonly rebootSentinelDir: string;
  readonly rebootSentinelName: string;
  /** Where the booted kernel's command line is read from. */
  readonly cmdlineFile: string;
  /** A production device accepts only "prod" bundles; any other accepts only "ci" bundles. */
  readonly production: boolean;
  /** The container engine that runs the compose apps. */
  readonly dockerHost: string;
  /** The testing window: how long every app container must keep running before an update is committed. */
  readonly testingWindowMs: number;
  /** The device's health checks: executables run in name order before an update commits (`[ferry] health_checks_dir`). */
  readonly healthChecksDir: string;
  /** How long one health check may run before its process group is killed and the update fails. */
  readonly healthCheckTimeoutMs: number;
  /**
   * `[pacman] docker_compose_bin`, as aktualizr-lite names it: the docker-compose v1 binary, or the `docker` CLI (a
   * file named `docker`), whose `compose` plugin is then used.
   */
  readonly composeBin: string;
  /** `[pacman] callback_program`: called at each step of an update (see callback-program.ts); none when absent. */
  readonly callbackProgram: string | undefined;
  /** How long a callback may run before it is killed (`[ferry] callback_timeout_seconds`). */
  readonly callbackTimeoutMs: number;
  /**
   * Which exit codes the device commands answer with: ferry's documented table, or today's aktualizr-lite codes for
   * scripts written against a current aklite-offline (`[ferry] exit_codes`).
   */
  readonly exitCodes: ExitCodeTable;
  /** The files the configuration was read from, in order. */
  readonly sources: readonly string[];
}

export type BootloaderConfig =
  { readonly kind: 'uboot'; readonly fwEnvConfig: string } | { readonly kind: 'grub'; readonly grubEnvFile: string };

/** Where aktualizr-lite looks when no --config is given; later entries override earlier ones. */
export const DEFAULT_CONFIG_LOCATIONS = ['/usr/lib/sota/conf.d', '/var/sota/sota.toml', '/etc/sota/conf.d'] as const;

type Table = Record<string, unknown>;

function invalid(message: string, cause?: unknown): FerryError {
  return new FerryError('CONFIG_INVALID', message, cause === undefined ? {} : { cause });
}

async function tomlFilesAt(location: string, explicit: boolean): Promise<string[]> {
  let stat;
  try {
    stat = await fs.stat(location);
  } catch (error) {
    if (explicit) throw invalid(`config ${location}: ${describeCause(error)}`, error);
    return [];
  }
  if (stat.isFile()) return [location];
  const names = (await fs.readdir(location)).filter((name) => name.endsWith('.toml')).sort();
  return names.map((name) => path.join(location, name));
}

function mergeInto(target: Table, source: Table): void {
  for (const [key, value] of Object.entries(source)) {
    const existing = target[key];
    if (
      typeof value === 'object' &&
      value !== null &&
      !Array.isArray(value) &&
      typeof existing === 'object' &&
      existing !== null &&
      !Array.isArray(existing)
    ) {
      mergeInto(existing as Table, value as Table);
    } else {
      target[key] = value;
    }
  }
}

function section(merged: Table, name: string): Table {
  const value = merged[name];
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(`[${name}] must be a table`);
  return value as Table;
}

function optionalString(table: Table, sectionName: string, key: string, fallback: string): string;
function optionalString(table: Table, sectionName: string, key: string, fallback?: undefined): string | undefined;
function optionalString(table: Table, sectionName: string, key: string, fallback?: string): string | undefined {
  const value = table[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || value === '') throw invalid(`[${sectionName}] ${key} must be a non-empty string`);
  return value;
}

/** aktualizr writes tags as one comma-separated string; a TOML array is accepted too. */
function tagsFrom(value: unknown): string[] {
  if (value === undefined) return [];
  if (typeof value === 'string')
    return value
      .split(',')
      .map((tag) => tag.trim())
      .filter((tag) => tag !== '');
  if (Array.isArray(value) && value.every((tag) => typeof tag === 'string'))
    return value.map((tag) => tag.trim()).filter((tag) => tag !== '');
  throw invalid('[pacman] tags must be a comma-separated string or an array of strings');
}

/** Called with the exit-code table a configuration asks for, as soon as it is known. */
export type ExitCodesListener = (table: ExitCodeTable) => void;

function isExitCodeTable(value: unknown): value is ExitCodeTable {
  return (EXIT_CODE_TABLES as readonly unknown[]).includes(value);
}

export function configFromTables(
  tables: readonly Table[],
  sources: readonly string[],
  onExitCodes?: ExitCodesListener,
): DeviceConfig {
  const merged: Table = {};
  for (const table of tables) mergeInto(merged, structuredClone(table));
  // Read before anything is checked: a configuration refused for another key still answers in the table it asks for.
  const ferrySection = merged['ferry'];
  const asked =
    typeof ferrySection === 'object' && ferrySection !== null ? (ferrySection as Table)['exit_codes'] : undefined;
  if (isExitCodeTable(asked)) onExitCodes?.(asked);
  const provision = section(merged, 'provision');
  const pacman = section(merged, 'pacman');
  const storage = section(merged, 'storage');
  const bootloader = section(merged, 'bootloader');
  const ferry = section(merged, 'ferry');

  const hardwareId = optionalString(provision, 'provision', 'primary_ecu_hardware_id');
  if (hardwareId === undefined) throw invalid('[provision] primary_ecu_hardware_id is required');

  const rollbackMode = optionalString(bootloader, 'bootloader', 'rollback_mode', 'uboot_masked');
  let bootloaderConfig: BootloaderConfig;
  if (rollbackMode === 'uboot_masked' || rollbackMode === 'uboot') {
    bootloaderConfig = {
      kind: 'uboot',
      fwEnvConfig: optionalString(bootloader, 'bootloader', 'fw_env_config', '/etc/fw_env.config'),
    };
  } else if (rollbackMode === 'grub') {
    bootloaderConfig = {
      kind: 'grub',
      grubEnvFile: optionalString(bootloader, 'bootloader', 'grub_env_file', '/boot/grub/grubenv'),
    };
  } else {
    throw invalid(`[bootloader] rollback_mode ${JSON.stringify(rollbackMode)} is not one of "uboot_masked", "grub"`);
  }

  const production = ferry['production'] ?? false;
  if (typeof production !== 'boolean') throw invalid('[ferry] production must be true or false');
  const window = ferry['testing_window_seconds'] ?? 120;
  if (typeof window !== 'number' || !Number.isFinite(window) || window < 0 || window > 3600) {
    throw invalid('[ferry] testing_window_seconds must be a number of seconds between 0 and 3600');
  }

  const callbackTimeout = ferry['callback_timeout_seconds'] ?? 60;
  if (
    typeof callbackTimeout !== 'number' ||
    !Number.isFinite(callbackTimeout) ||
    callbackTimeout <= 0 ||
    callbackTimeout > 3600
  ) {
    throw invalid('[ferry] callback_timeout_seconds must be a number of seconds above 0, at most 3600');
  }
  const checkTimeout = ferry['health_check_timeout_seconds'] ?? 60;
  if (typeof checkTimeout !== 'number' || !Number.isFinite(checkTimeout) || checkTimeout <= 0 || checkTimeout > 3600) {
    throw invalid('[ferry] health_check_timeout_seconds must be a number of seconds above 0, at most 3600');
  }

  const exitCodes = ferry['exit_codes'] ?? 'ferry';
  if (!isExitCodeTable(exitCodes)) {
    throw invalid(`[ferry] exit_codes must be one of ${EXIT_CODE_TABLES.map((table) => `"${table}"`).join(', ')}`);
  }

  return {
    hardwareId,
    tags: tagsFrom(pacman['tags']),
    os: optionalString(pacman, 'pacman', 'os', 'lmp'),
    sysroot: optionalString(pacman, 'pacman', 'sysroot', '/sysroot'),
    storagePath: optionalString(storage, 'storage', 'path', '/var/sota'),
    bootloader: bootloaderConfig,
    rebootSentinelDir: optionalString(bootloader, 'bootloader', 'reboot_sentinel_dir', '/var/run/aktualizr-session'),
    rebootSentinelName: optionalString(bootloader, 'bootloader', 'reboot_sentinel_name', 'need_reboot'),
    cmdlineFile: optionalString(ferry, 'ferry', 'cmdline_file', '/proc/cmdline'),
    production,
    dockerHost: optionalString(ferry, 'ferry', 'docker_host', 'unix:///var/run/docker.sock'),
    testingWindowMs: Math.round(window * 1000),
    composeBin: optionalString(pacman, 'pacman', 'docker_compose_bin', 'docker-compose'),
    callbackProgram: optionalString(pacman, 'pacman', 'callback_program'),
    callbackTimeoutMs: Math.round(callbackTimeout * 1000),
    healthChecksDir: optionalString(ferry, 'ferry', 'health_checks_dir', '/etc/ferry/check.d'),
    healthCheckTimeoutMs: Math.round(checkTimeout * 1000),
    exitCodes,
    sources,
  };
}

/** Reads the configuration from the given files or directories, or from aktualizr-lite's default locations. */
export async function loadDeviceConfig(
  locations: readonly string[] = [],
  onExitCodes?: ExitCodesListener,
): Promise<DeviceConfig> {
  const explicit = locations.length > 0;
  const files: string[] = [];
  for (const location of explicit ? locations : DEFAULT_CONFIG_LOCATIONS)
    files.push(...(await tomlFilesAt(location, explicit)));
  if (files.length === 0) {
    throw invalid(
      explicit
        ? `no .toml files in ${locations.join(', ')}`
        : `no configuration found in ${DEFAULT_CONFIG_LOCATIONS.join(', ')}`,
    );
  }
  const tables: Table[] = [];
  for (const file of files) {
    try {
      tables.push(parseToml(await fs.readFile(file, 'utf8')) as Table);
    } catch (error) {
      throw invalid(`config ${file}: ${describeCause(error)}`, error);
    }
  }
  return configFromTables(tables, files, onExitCodes);
}
