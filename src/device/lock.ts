import { promises as fs } from 'node:fs';
import path from 'node:path';
import { FerryError } from '../errors.js';
import { processAlive } from '../util/process-alive.js';

/**
 * One `install` or `run` at a time. The lock is a file in the volatile directory (a tmpfs, emptied by a reboot),
 * holding the holder's pid and command. A lock whose process is gone is stale: it is taken over, so a killed command
 * never blocks the next one.
 */
export interface LockHolder {
  readonly pid: number;
  readonly command: string;
  readonly since: string;
}

const LOCK_NAME = 'ferry.lock';

async function readHolder(file: string): Promise<LockHolder | undefined> {
  try {
    const holder = JSON.parse(await fs.readFile(file, 'utf8')) as LockHolder;
    return Number.isSafeInteger(holder.pid) && holder.pid > 0 ? holder : undefined;
  } catch {
    return undefined;
  }
}

/** The live process that holds the lock, if one does. */
export async function lockHolder(volatileDir: string): Promise<LockHolder | undefined> {
  const holder = await readHolder(path.join(volatileDir, LOCK_NAME));
  return holder !== undefined && processAlive(holder.pid) ? holder : undefined;
}

export async function withDeviceLock<T>(volatileDir: string, command: string, work: () => Promise<T>): Promise<T> {
  const file = path.join(volatileDir, LOCK_NAME);
  await fs.mkdir(volatileDir, { recursive: true });
  const mine: LockHolder = { pid: process.pid, command, since: new Date().toISOString() };
  for (let attempt = 0; ; attempt++) {
    try {
      await fs.writeFile(file, JSON.stringify(mine), { flag: 'wx' });
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
          throw new FerryError(
            'LOCKED',
            'another ferry command took the lock while a stale one was cleared; try again',
          );
        }
        throw error;
      }
      const holder = await readHolder(file);
      if (holder !== undefined && holder.pid !== process.pid && processAlive(holder.pid)) {
        throw new FerryError(
          'LOCKED',
          `another ferry ${holder.command} is running (pid ${holder.pid}, since ${holder.since})`,
          {
            detail: { holder },
          },
        );
      }
      // Stale: its process is gone (or the file is unreadable). Take it over.
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
