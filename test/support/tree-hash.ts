import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';

/**
 * A fingerprint of a directory tree: every path, its type and mode, symlink targets and file contents. Two equal
 * fingerprints mean the tree is byte-identical (timestamps aside). `exclude` names paths relative to `root`.
 */
export async function hashTree(root: string, exclude: readonly string[] = []): Promise<string> {
  const hash = createHash('sha256');
  const skip = new Set(exclude.map((entry) => path.normalize(entry)));
  async function walk(relative: string): Promise<void> {
    if (skip.has(path.normalize(relative))) return;
    const full = path.join(root, relative);
    let stat;
    try {
      stat = await fs.lstat(full);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        hash.update(`missing ${relative}\n`);
        return;
      }
      throw error;
    }
    const mode = (stat.mode & 0o7777).toString(8);
    if (stat.isSymbolicLink()) {
      hash.update(`link ${relative} ${await fs.readlink(full)}\n`);
    } else if (stat.isDirectory()) {
      hash.update(`dir ${relative} ${mode}\n`);
      for (const name of (await fs.readdir(full)).sort()) await walk(path.join(relative, name));
    } else if (stat.isFile()) {
      hash.update(`file ${relative} ${mode} ${stat.size}\n`);
      hash.update(await fs.readFile(full));
    } else {
      hash.update(`other ${relative} ${mode}\n`);
    }
  }
  await walk('.');
  return hash.digest('hex');
}
