import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { ArchiveFileObjectHasher } from '../../src/ostree/archive-object.js';
import { OstreeRepo } from '../../src/ostree/ostree-repo.js';
import { buildFactory, exportTo, tempDir } from '../support/factory.js';

let objects: string[] = [];
before(async () => {
  const factory = await buildFactory();
  const bundle = await exportTo(factory, factory.v2);
  const root = path.join(bundle, 'ostree_repo', 'objects');
  for (const prefix of await fs.readdir(root)) {
    for (const name of await fs.readdir(path.join(root, prefix)))
      if (name.endsWith('.filez')) objects.push(path.join(root, prefix, name));
  }
});

async function checksumOf(bytes: Buffer, chunk = 7): Promise<string | Error> {
  const hasher = new ArchiveFileObjectHasher();
  for (let at = 0; at < bytes.length; at += chunk) await hasher.update(bytes.subarray(at, at + chunk));
  return hasher.digest();
}

const nameOf = (file: string) => path.basename(path.dirname(file)) + path.basename(file, '.filez');

describe('OSTree archive file objects, checksummed as they stream', () => {
  test('every .filez that ostree wrote hashes to its name (files and symlinks, in any chunking)', async () => {
    assert.ok(objects.length >= 5);
    for (const file of objects) {
      const bytes = await fs.readFile(file);
      assert.equal(await checksumOf(bytes), nameOf(file), file);
      assert.equal(await checksumOf(bytes, 65536), nameOf(file), file);
    }
  });

  test('one flipped bit anywhere changes the checksum or is refused as no file object', async () => {
    for (const file of objects) {
      const bytes = await fs.readFile(file);
      for (const at of [3, 20, bytes.length - 1]) {
        const changed = Buffer.from(bytes);
        changed[at] = changed[at]! ^ 1;
        const result = await checksumOf(changed);
        assert.ok(result instanceof Error || result !== nameOf(file), `${file} at ${at}`);
      }
    }
  });

  test('a small object checksummed whole (digestWhole) agrees with the stream, and refuses the same damage', async () => {
    const bound = 1024 * 1024;
    let checked = 0;
    for (const file of objects) {
      const bytes = await fs.readFile(file);
      const whole = ArchiveFileObjectHasher.digestWhole(bytes, bound);
      // Content declared past the bound is left to the stream, not inflated at once.
      if (whole === undefined) continue;
      checked += 1;
      assert.equal(whole, nameOf(file), file);
      for (const at of [3, 20, bytes.length - 1]) {
        const changed = Buffer.from(bytes);
        changed[at] = changed[at]! ^ 1;
        const damaged = ArchiveFileObjectHasher.digestWhole(changed, bound);
        const streamed = await checksumOf(changed);
        assert.ok(damaged instanceof Error || damaged !== nameOf(file), `${file} at ${at}`);
        assert.equal(damaged instanceof Error, streamed instanceof Error, `${file} at ${at}: ${String(damaged)}`);
      }
      assert.ok(ArchiveFileObjectHasher.digestWhole(bytes.subarray(0, 6), bound) instanceof Error);
      assert.ok(ArchiveFileObjectHasher.digestWhole(bytes.subarray(0, bytes.length - 1), bound) instanceof Error);
    }
    assert.ok(checked >= 5, `${checked} objects checked whole`);
    const withContent: string[] = [];
    for (const file of objects)
      if (ArchiveFileObjectHasher.digestWhole(await fs.readFile(file), 0) === undefined) withContent.push(file);
    assert.ok(withContent.length > 0, 'an object whose content is past the bound is left to the stream');
  });

  test('a truncated object is refused', async () => {
    const bytes = await fs.readFile(objects[0]!);
    assert.ok((await checksumOf(bytes.subarray(0, 6))) instanceof Error);
  });

  test('a big file object streams through in bounded memory: the hasher waits for inflate to keep up', async () => {
    const dir = await tempDir('big-object');
    const tree = path.join(dir, 'tree');
    await fs.mkdir(tree);
    const size = 96 * 1024 * 1024;
    // Incompressible, so the object is as big as its content and arrives much faster than it inflates.
    const handle = await fs.open(path.join(tree, 'big'), 'w');
    for (let written = 0; written < size; written += 4 * 1024 * 1024) await handle.write(randomBytes(4 * 1024 * 1024));
    await handle.close();
    const repo = await OstreeRepo.create(path.join(dir, 'repo'), 'archive');
    await repo.commitTree({ tree, branch: 'big', subject: 'big' });
    let biggest = { file: '', size: 0 };
    const root = path.join(repo.path, 'objects');
    for (const prefix of await fs.readdir(root)) {
      for (const name of await fs.readdir(path.join(root, prefix))) {
        const file = path.join(root, prefix, name);
        const { size: bytes } = await fs.stat(file);
        if (name.endsWith('.filez') && bytes > biggest.size) biggest = { file, size: bytes };
      }
    }
    assert.ok(biggest.size > size, `the object holds the whole file (${biggest.size} B)`);
    const hasher = new ArchiveFileObjectHasher();
    // Buffers held, not garbage waiting for a collection: a loaded machine collects late, and unreferenced chunks
    // would count. A full collection before each sample leaves only what is still referenced.
    v8.setFlagsFromString('--expose-gc');
    const collect = runInNewContext('gc') as () => void;
    collect();
    const start = process.memoryUsage().arrayBuffers;
    let peak = 0;
    for await (const chunk of createReadStream(biggest.file, { highWaterMark: 1024 * 1024 })) {
      await hasher.update(chunk as Buffer);
      collect();
      peak = Math.max(peak, process.memoryUsage().arrayBuffers - start);
    }
    assert.equal(await hasher.digest(), nameOf(biggest.file));
    assert.ok(peak < 32 * 1024 * 1024, `at most ${peak} B of buffers were held at once`);
  });
});
