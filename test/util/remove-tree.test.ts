import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { removeTree, REMOVE_BATCH, type RemoveTreeIo } from '../../src/util/remove-tree.js';
import { tempDir } from '../support/factory.js';

/** An OSTree-like tree: `prefixes` directories of `perPrefix` files each, and a nested directory. */
async function objectTree(root: string, prefixes: number, perPrefix: number): Promise<number> {
  let files = 0;
  for (let p = 0; p < prefixes; p++) {
    const dir = path.join(root, 'objects', p.toString(16).padStart(2, '0'));
    await fs.mkdir(dir, { recursive: true });
    for (let f = 0; f < perPrefix; f++, files++) await fs.writeFile(path.join(dir, `${f}.filez`), `${p}/${f}`);
  }
  await fs.mkdir(path.join(root, 'tmp', 'deep', 'er'), { recursive: true });
  await fs.writeFile(path.join(root, 'tmp', 'deep', 'er', 'leaf'), 'x');
  await fs.symlink('/etc/passwd', path.join(root, 'tmp', 'link'));
  return files + 2;
}

/** Node's own calls, counting how many are in flight at once. */
function watchedIo(): { io: RemoveTreeIo; peak: () => number; unlinked: () => number } {
  let inFlight = 0;
  let peak = 0;
  let unlinked = 0;
  const watch = async <T>(operation: Promise<T>): Promise<T> => {
    inFlight += 1;
    peak = Math.max(peak, inFlight);
    try {
      return await operation;
    } finally {
      inFlight -= 1;
    }
  };
  return {
    io: {
      lstat: (file) => watch(fs.lstat(file)),
      readdir: (dir) => watch(fs.readdir(dir, { withFileTypes: true })),
      unlink: (file) => {
        unlinked += 1;
        return watch(fs.unlink(file));
      },
      rmdir: (dir) => watch(fs.rmdir(dir)),
    },
    peak: () => peak,
    unlinked: () => unlinked,
  };
}

describe('removeTree', () => {
  test('removes a whole tree with at most one batch of operations in flight, however many files it holds', async () => {
    // fs.rm({ recursive: true }) starts every removal of the tree at once: the unpacked objects of a big bundle are
    // then tens of thousands of pending operations, tens of MiB of memory at the end of an install.
    const root = path.join(await tempDir('remove-tree'), 'bundle');
    const files = await objectTree(root, 8, 100);
    const watched = watchedIo();
    await removeTree(root, watched.io);
    await assert.rejects(fs.lstat(root), { code: 'ENOENT' });
    assert.equal(watched.unlinked(), files);
    assert.ok(watched.peak() <= REMOVE_BATCH, `${watched.peak()} operations in flight at once`);
  });

  test('a missing path is fine, a file is removed, and a symlink is removed without following it', async () => {
    const dir = await tempDir('remove-tree-kinds');
    await removeTree(path.join(dir, 'absent'));
    const file = path.join(dir, 'file');
    await fs.writeFile(file, 'x');
    await removeTree(file);
    await assert.rejects(fs.lstat(file), { code: 'ENOENT' });
    const kept = path.join(dir, 'kept');
    await fs.mkdir(kept);
    await fs.writeFile(path.join(kept, 'inside'), 'x');
    const link = path.join(dir, 'link');
    await fs.symlink(kept, link);
    await removeTree(link);
    await assert.rejects(fs.lstat(link), { code: 'ENOENT' });
    assert.equal(await fs.readFile(path.join(kept, 'inside'), 'utf8'), 'x');
  });

  test('a file it cannot remove is an error, as with fs.rm', async () => {
    const dir = await tempDir('remove-tree-error');
    await fs.mkdir(path.join(dir, 'a'));
    await fs.writeFile(path.join(dir, 'a', 'f'), 'x');
    const io: RemoveTreeIo = {
      lstat: (file) => fs.lstat(file),
      readdir: (d) => fs.readdir(d, { withFileTypes: true }),
      unlink: () => Promise.reject(Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' })),
      rmdir: (d) => fs.rmdir(d),
    };
    await assert.rejects(removeTree(path.join(dir, 'a'), io), { code: 'EACCES' });
  });
});
