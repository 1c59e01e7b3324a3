import path from 'node:path';
import { FerryError } from '../errors.js';
import { withLockFile } from '../util/lock-file.js';
import { openFactoryRepo, type FactoryRepo } from './factory-repo.js';

/**
 * One command at a time changes a factory repository: an export records the metadata versions it signed, target
 * add and keys rotate sign new versions. Two at once would read the same versions and write the same numbers over
 * different content, and a device that took one stick would refuse the other. The lock is a file in the repository,
 * taken over when its holder is gone (src/util/lock-file.ts).
 */
const LOCK_NAME = '.ferry.lock';

/** Opens the factory repository in `dir` and runs `work` on it holding its lock. */
export async function withFactoryRepo<T>(
  dir: string,
  command: string,
  work: (repo: FactoryRepo) => Promise<T>,
): Promise<T> {
  const repo = await openFactoryRepo(path.resolve(dir));
  return withLockFile(
    path.join(repo.dir, LOCK_NAME),
    command,
    (holder) =>
      new FerryError(
        'FACTORY_LOCKED',
        holder === undefined
          ? `another ferry command took the lock of ${repo.dir} while a stale one was cleared; try again`
          : `another ferry ${holder.command} is changing ${repo.dir} (pid ${holder.pid}, since ${holder.since})`,
        { detail: { holder: holder ?? null } },
      ),
    () => work(repo),
  );
}
