import { promises as fs } from 'node:fs';
import path from 'node:path';

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

/** The total size of the regular files under `dir`. */
export async function treeBytes(dir: string): Promise<number> {
  let total = 0;
  let entries;
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) total += await treeBytes(full);
    else if (entry.isFile()) total += (await fs.stat(full)).size;
  }
  return total;
}
