import { promises as fs, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { runTool } from './tool.js';

/** Bytes available to an unprivileged writer on the filesystem that holds `target` (or its nearest existing parent). */
export async function availableBytes(target: string): Promise<{ bytes: number; totalBytes: number; device: number }> {
  let dir = path.resolve(target);
  for (;;) {
    try {
      const [stats, stat] = await Promise.all([fs.statfs(dir), fs.stat(dir)]);
      return { bytes: stats.bavail * stats.bsize, totalBytes: stats.blocks * stats.bsize, device: stat.dev };
    } catch (error) {
      const parent = path.dirname(dir);
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || parent === dir) throw error;
      dir = parent;
    }
  }
}

/**
 * The total size of the regular files under `dir`. Synchronous on purpose: an OSTree repo holds tens of thousands of
 * objects, and one promise round trip per stat costs ten times the stat itself.
 */
export async function treeBytes(dir: string): Promise<number> {
  return treeBytesSync(dir);
}

function treeBytesSync(dir: string): number {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  let total = 0;
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) total += treeBytesSync(full);
    else if (entry.isFile()) total += statSync(full, { throwIfNoEntry: false })?.size ?? 0;
  }
  return total;
}

/**
 * treeBytes, counted by `du` in a child process: started early, it runs on the other core while the metadata is
 * verified. Where `du` cannot count bytes (busybox has no -b), the walk here does it.
 */
export async function treeBytesInBackground(dir: string): Promise<number> {
  try {
    const bytes = Number((await runTool('du', ['-s', '-b', '--', dir])).split('\t')[0]);
    if (Number.isSafeInteger(bytes) && bytes >= 0) return bytes;
  } catch {
    // Counted below instead.
  }
  return treeBytes(dir);
}
