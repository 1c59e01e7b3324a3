import { readFileSync } from 'node:fs';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { FerryError } from '../errors.js';
import { processAlive } from './process-alive.js';

/**
 * A lock that one ferry command holds while it changes something two commands must not change at once: a file
 * created exclusively, holding the holder's pid, command, start time and the boot it runs in. A lock whose process is
 * gone, or that was taken in an earlier boot (its pid may belong to another process by now), is stale: it is taken
 * over, so a killed command or a power cut never blocks the next one.
 */
export interface LockHolder {
  readonly pid: number;
  readonly command: string;
  readonly since: string;
  /** The kernel's id of the boot the holder ran in; absent in locks written before it was recorded. */
  readonly bootId?: string;
}

function currentBootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return undefined;
  }
}

async function readHolder(file: string): Promise<LockHolder | undefined> {
  try {
    const holder = JSON.parse(await fs.readFile(file, 'utf8')) as LockHolder;
    return Number.isSafeInteger(holder.pid) && holder.pid > 0 ? holder : undefined;
  } catch {
    return undefined;
  }
}

function alive(holder: LockHolder): boolean {
  const boot = currentBootId();
  if (holder.bootId !== undefined && boot !== undefined && holder.bootId !== boot) return false;
  return processAlive(holder.pid);
}

/** The live process that holds the lock in `file`, if one does. */
export async function liveLockHolder(file: string): Promise<LockHolder | undefined> {
  const holder = await readHolder(file);
  return holder !== undefined && alive(holder) ? holder : undefined;
}

/**
 * Runs `work` holding the lock in `file`. A live holder ends it at once with `busy(holder)`; another command that takes
 * the lock in the instant a stale one is cleared ends it with `busy` of that command.
 */
export async function withLockFile<T>(
  file: string,
  command: string,
  busy: (holder: LockHolder | undefined) => FerryError,
  work: () => Promise<T>,
): Promise<T> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const bootId = currentBootId();
  const mine: LockHolder = {
    pid: process.pid,
    command,
    since: new Date().toISOString(),
    ...(bootId === undefined ? {} : { bootId }),
  };
  for (let attempt = 0; ; attempt++) {
    try {
      await fs.writeFile(file, JSON.stringify(mine), { flag: 'wx' });
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = await readHolder(file);
      if (attempt > 0) throw busy(holder);
      if (holder !== undefined && holder.pid !== process.pid && alive(holder)) throw busy(holder);
      // Stale: its process is gone, it was taken in another boot, or the file is unreadable. Take it over.
      await fs.rm(file, { force: true });
    }
  }
  try {
    return await work();
  } finally {
    const holder = await readHolder(file);
    if (holder?.pid === process.pid) await fs.rm(file, { force: true });
  }
}
