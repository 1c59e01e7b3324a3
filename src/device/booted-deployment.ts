import { promises as fs } from 'node:fs';
import path from 'node:path';
import { FerryError, describeCause } from '../errors.js';
import { writeFileAtomic } from '../util/atomic-file.js';

export interface BootedDeployment {
  /** The `ostree=` argument of the booted kernel. */
  readonly ostreeArg: string;
  readonly commit: string;
  readonly serial: number;
}

export function ostreeArgOf(cmdline: string): string | undefined {
  for (const word of cmdline.trim().split(/\s+/)) {
    if (word.startsWith('ostree=')) return word.slice('ostree='.length);
  }
  return undefined;
}

const CACHE_NAME = 'ferry-booted.json';

/**
 * Finds the booted deployment from the kernel command line, as ostree-prepare-root does at boot: `ostree=` names a
 * symlink under the sysroot that points at the deployment directory.
 *
 * That symlink lives in `ostree/boot.N`, which the next deploy replaces, so the answer is worked out once per boot
 * and kept in the volatile directory (a tmpfs, emptied by every reboot) for the rest of that boot.
 */
export async function readBootedDeployment(options: {
  cmdlineFile: string;
  sysroot: string;
  volatileDir: string;
}): Promise<BootedDeployment> {
  let cmdline: string;
  try {
    cmdline = await fs.readFile(options.cmdlineFile, 'utf8');
  } catch (error) {
    throw new FerryError(
      'DEVICE_STATE_UNREADABLE',
      `cannot read the kernel command line ${options.cmdlineFile}: ${describeCause(error)}`,
      { cause: error },
    );
  }
  const ostreeArg = ostreeArgOf(cmdline);
  if (ostreeArg === undefined) {
    throw new FerryError(
      'DEVICE_STATE_UNREADABLE',
      `${options.cmdlineFile} has no ostree= argument: this is not an OSTree boot`,
    );
  }

  const cacheFile = path.join(options.volatileDir, CACHE_NAME);
  try {
    const cached = JSON.parse(await fs.readFile(cacheFile, 'utf8')) as BootedDeployment;
    if (cached.ostreeArg === ostreeArg && typeof cached.commit === 'string') return cached;
  } catch {
    // No cache yet in this boot, or an unreadable one: resolve from the sysroot.
  }

  let resolved: string;
  try {
    resolved = await fs.realpath(path.join(options.sysroot, ostreeArg));
  } catch (error) {
    throw new FerryError(
      'DEVICE_STATE_UNREADABLE',
      `the booted deployment ${ostreeArg} does not resolve under ${options.sysroot}: ${describeCause(error)}`,
      { cause: error },
    );
  }
  const match = /^([0-9a-f]{64})\.(\d+)$/.exec(path.basename(resolved));
  if (match === null) {
    throw new FerryError(
      'DEVICE_STATE_UNREADABLE',
      `the booted deployment ${ostreeArg} points at ${resolved}, not a deployment`,
    );
  }
  const booted: BootedDeployment = { ostreeArg, commit: match[1]!, serial: Number(match[2]) };
  await fs.mkdir(options.volatileDir, { recursive: true });
  await writeFileAtomic(cacheFile, JSON.stringify(booted));
  return booted;
}
