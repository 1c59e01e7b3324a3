import { promises as fs } from 'node:fs';
import path from 'node:path';

/** The file system calls a removal makes; a parameter so that a test can watch how many are in flight. */
export interface RemoveTreeIo {
  lstat(file: string): Promise<{ isDirectory(): boolean }>;
  readdir(dir: string): Promise<Array<{ readonly name: string; isDirectory(): boolean }>>;
  unlink(file: string): Promise<void>;
  rmdir(dir: string): Promise<void>;
}

const nodeIo: RemoveTreeIo = {
  lstat: (file) => fs.lstat(file),
  readdir: (dir) => fs.readdir(dir, { withFileTypes: true }),
  unlink: (file) => fs.unlink(file),
  rmdir: (dir) => fs.rmdir(dir),
};

/** How many entries of one directory are removed at a time: enough to keep the thread pool busy. */
export const REMOVE_BATCH = 16;

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'ENOENT';
}

/**
 * Removes `target` and everything under it, as `fs.rm(target, { recursive: true, force: true })` does (a missing
 * target is fine). Node's recursive rm starts the removal of every entry of the whole tree at once: for the 50,000
 * objects of an unpacked bundle that is 50,000 pending operations with their promises and paths, some 50 MiB of
 * memory at the very end of an install. Here one directory is removed at a time, REMOVE_BATCH of its entries in
 * flight, so memory stays flat whatever the tree holds.
 */
export async function removeTree(target: string, io: RemoveTreeIo = nodeIo): Promise<void> {
  let directory: boolean;
  try {
    directory = (await io.lstat(target)).isDirectory();
  } catch (error) {
    if (isMissing(error)) return;
    throw error;
  }
  if (directory) await removeDirectory(target, io);
  else await io.unlink(target).catch(ignoreMissing);
}

function ignoreMissing(error: unknown): void {
  if (!isMissing(error)) throw error;
}

async function removeDirectory(dir: string, io: RemoveTreeIo): Promise<void> {
  let entries: Array<{ readonly name: string; isDirectory(): boolean }>;
  try {
    entries = await io.readdir(dir);
  } catch (error) {
    if (isMissing(error)) return;
    throw error;
  }
  const files = entries.filter((entry) => !entry.isDirectory()).map((entry) => path.join(dir, entry.name));
  for (let start = 0; start < files.length; start += REMOVE_BATCH)
    await Promise.all(files.slice(start, start + REMOVE_BATCH).map((file) => io.unlink(file).catch(ignoreMissing)));
  for (const entry of entries) if (entry.isDirectory()) await removeDirectory(path.join(dir, entry.name), io);
  await io.rmdir(dir).catch(ignoreMissing);
}
