import path from 'node:path';
import { FerryError } from '../errors.js';
import { liveLockHolder, withLockFile, type LockHolder } from '../util/lock-file.js';

/**
 * One `install`, `run` or `device provision` at a time. The lock is a file in the volatile directory (a tmpfs,
 * emptied by a reboot); src/util/lock-file.ts says when a lock is stale and taken over.
 */
export type { LockHolder } from '../util/lock-file.js';

const LOCK_NAME = 'ferry.lock';

/** The live process that holds the device lock, if one does. */
export function lockHolder(volatileDir: string): Promise<LockHolder | undefined> {
  return liveLockHolder(path.join(volatileDir, LOCK_NAME));
}

export function withDeviceLock<T>(volatileDir: string, command: string, work: () => Promise<T>): Promise<T> {
  return withLockFile(
    path.join(volatileDir, LOCK_NAME),
    command,
    (holder) =>
      holder === undefined
        ? new FerryError('LOCKED', 'another ferry command took the lock while a stale one was cleared; try again')
        : new FerryError(
            'LOCKED',
            `another ferry ${holder.command} is running (pid ${holder.pid}, since ${holder.since})`,
            {
              detail: { holder },
            },
          ),
    work,
  );
}
