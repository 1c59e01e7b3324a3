import { constants, promises as fs, type Stats } from 'node:fs';
import path from 'node:path';

/**
 * Whether a path given on the command line can serve what a command does with it, decided from stat, statfs and
 * access alone, before the command reads or writes anything: a mistyped path then gets one clear answer at once
 * instead of a raw ENOTDIR, an exit 1, or a command that blocks forever reading /proc or a device.
 */

/** What a command does with a path. */
export type PathUse =
  /** Reads what is there: it must exist. `writesInPlace`: the command also changes it (a repository, a bundle). */
  | { readonly reads: PathKind; readonly writesInPlace?: boolean }
  /** Creates it (and its missing parents), or fills it when it is already there. */
  | { readonly creates: PathKind };

export type PathKind = 'dir' | 'file' | 'dir-or-file';

/** Why a path is unusable; each has its own exit code (src/exit-codes.ts, PATH_*). */
export type PathProblem = 'missing' | 'wrong-type' | 'not-writable' | 'special';

export interface UnusablePath {
  readonly problem: PathProblem;
  readonly reason: string;
}

/**
 * File systems whose files are the kernel's interfaces, not data: reading one can block forever or never end, and
 * nothing ferry writes belongs there (/dev holds devices, caught as special files; its tmpfs is an ordinary one).
 */
const PSEUDO_FILE_SYSTEMS: ReadonlyMap<number, string> = new Map([
  [0x9fa0, 'proc'],
  [0x62656572, 'sysfs'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
  [0x73636673, 'securityfs'],
  [0xcafe4a11, 'bpf'],
  [0x1cd1, 'devpts'],
  [0x6165676c, 'pstore'],
  [0x62656570, 'configfs'],
  [0xde5e81e4, 'efivarfs'],
  [0x65735543, 'fusectl'],
]);

/** Returns why `target` cannot serve `use`, or undefined when it can. */
export async function unusablePath(target: string, use: PathUse): Promise<UnusablePath | undefined> {
  const kind = 'reads' in use ? use.reads : use.creates;
  const stats = await statOf(target);
  if (stats instanceof Error) {
    const code = (stats as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') {
      return { problem: 'missing', reason: `${target} cannot be reached: ${code ?? stats.message}` };
    }
    // Missing, or under something that is not a directory: the nearest part that exists says which.
    const nearest = await nearestExisting(target);
    if ('link' in nearest) {
      return {
        problem: 'missing',
        reason: `${nearest.link} is a symbolic link to ${nearest.to}, which does not exist`,
      };
    }
    const { ancestor, ancestorStats } = nearest;
    if (!ancestorStats.isDirectory()) {
      return {
        problem: 'wrong-type',
        reason: `${target} lies under ${ancestor}, which is ${describeType(ancestorStats)}`,
      };
    }
    const pseudo = await pseudoFileSystemOf(ancestor);
    if (pseudo !== undefined) {
      return { problem: 'special', reason: `${target} is on ${ancestor}, the kernel's ${pseudo} file system` };
    }
    if ('reads' in use) return { problem: 'missing', reason: `${target} does not exist` };
    return notWritable(target, ancestor);
  }
  const pseudo = await pseudoFileSystemOf(target);
  if (pseudo !== undefined) return { problem: 'special', reason: `${target} is on the kernel's ${pseudo} file system` };
  if (!stats.isDirectory() && !stats.isFile()) {
    return { problem: 'special', reason: `${target} is ${describeType(stats)}, not a regular file or directory` };
  }
  if (kind === 'dir' && !stats.isDirectory()) {
    return { problem: 'wrong-type', reason: `${target} is ${describeType(stats)}, not a directory` };
  }
  if (kind === 'file' && !stats.isFile()) {
    return { problem: 'wrong-type', reason: `${target} is a directory, not a file` };
  }
  const written = 'creates' in use || use.writesInPlace === true;
  return written ? notWritable(target, stats.isDirectory() ? target : path.dirname(target)) : undefined;
}

async function statOf(target: string): Promise<Stats | Error> {
  try {
    return await fs.stat(target);
  } catch (error) {
    return error as Error;
  }
}

/** The path itself or its nearest ancestor that exists; or the symbolic link on the way that points nowhere. */
async function nearestExisting(
  target: string,
): Promise<{ ancestor: string; ancestorStats: Stats } | { link: string; to: string }> {
  let current = path.resolve(target);
  for (;;) {
    const found = await lstatOf(current);
    if (!(found instanceof Error)) {
      if (!found.isSymbolicLink()) return { ancestor: current, ancestorStats: found };
      const followed = await statOf(current);
      if (followed instanceof Error) return { link: current, to: await fs.readlink(current) };
      return { ancestor: current, ancestorStats: followed };
    }
    const parent = path.dirname(current);
    if (parent === current) throw found;
    current = parent;
  }
}

async function lstatOf(target: string): Promise<Stats | Error> {
  try {
    return await fs.lstat(target);
  } catch (error) {
    return error as Error;
  }
}

/** A directory ferry writes into: root passes every permission check, but not a read-only mount (EROFS). */
async function notWritable(target: string, dir: string): Promise<UnusablePath | undefined> {
  try {
    await fs.access(dir, constants.W_OK);
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'EROFS' ? 'a read-only file system' : code === 'EACCES' ? 'not writable' : code;
    return {
      problem: 'not-writable',
      reason: dir === target ? `${target} cannot be written: ${why}` : `${target} cannot be created in ${dir}: ${why}`,
    };
  }
}

async function pseudoFileSystemOf(target: string): Promise<string | undefined> {
  try {
    return PSEUDO_FILE_SYSTEMS.get(Number((await fs.statfs(target)).type));
  } catch {
    return undefined;
  }
}

function describeType(stats: Stats): string {
  if (stats.isFile()) return 'a file';
  if (stats.isDirectory()) return 'a directory';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  if (stats.isFIFO()) return 'a pipe';
  if (stats.isSocket()) return 'a socket';
  return 'a special file';
}
