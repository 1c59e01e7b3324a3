import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, test } from 'node:test';
import { writeTar } from '../../src/util/tar-pack.js';
import { carryBuffersAllocated, createSparseWriteStream, SPARSE_BLOCK } from '../../src/util/sparse-file.js';
import { tempDir } from '../support/factory.js';

const MiB = 1024 * 1024;

/** Bytes the filesystem allocated for `file`: what a sparse file really costs on disk. */
async function allocated(file: string): Promise<number> {
  return (await fs.stat(file)).blocks * 512;
}

/** `content` cut into chunks of awkward sizes, so that chunks and blocks never line up. */
function chunked(content: Buffer, seed: number): Readable {
  const chunks: Buffer[] = [];
  let offset = 0;
  let state = seed;
  while (offset < content.length) {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    const size = 1 + (state % (3 * SPARSE_BLOCK));
    chunks.push(content.subarray(offset, offset + size));
    offset += size;
  }
  return Readable.from(chunks);
}

/** 8 MiB: data at the start, around an unaligned offset and at the end, zeros between them. */
function mostlyZeros(tail: 'data' | 'zeros'): Buffer {
  const content = Buffer.alloc(8 * MiB);
  randomBytes(1000).copy(content, 0);
  randomBytes(3 * SPARSE_BLOCK).copy(content, 3 * MiB + 17);
  if (tail === 'data') randomBytes(999).copy(content, content.length - 999);
  return content;
}

describe('sparse writes', () => {
  for (const tail of ['data', 'zeros'] as const) {
    test(`a copy with ${tail} at its end reads back the same bytes, with its zero blocks left as holes`, async () => {
      const dir = await tempDir('sparse');
      const content = Buffer.concat([mostlyZeros(tail), Buffer.alloc(tail === 'zeros' ? 5 * MiB + 3 : 0)]);
      for (const seed of [1, 2, 3]) {
        const file = path.join(dir, `copy-${tail}-${seed}`);
        await pipeline(chunked(content, seed), createSparseWriteStream(file, { sync: seed === 1 }));
        const back = await fs.readFile(file);
        assert.equal(back.length, content.length, 'trailing zeros are part of the length');
        assert.ok(back.equals(content), 'the bytes read back are the bytes written');
        // Real bytes: about 200 KiB, each run rounded out to whole blocks; 13 MiB of zeros must not be allocated.
        assert.ok((await allocated(file)) <= 8 * SPARSE_BLOCK, `${await allocated(file)} bytes allocated`);
      }
    });
  }

  test('a file of only zeros allocates nothing, and an empty stream makes an empty file', async () => {
    const dir = await tempDir('sparse');
    await pipeline(chunked(Buffer.alloc(3 * MiB + 5), 7), createSparseWriteStream(path.join(dir, 'zeros')));
    assert.equal((await fs.stat(path.join(dir, 'zeros'))).size, 3 * MiB + 5);
    assert.equal(await allocated(path.join(dir, 'zeros')), 0);
    await pipeline(Readable.from([]), createSparseWriteStream(path.join(dir, 'empty')));
    assert.equal((await fs.stat(path.join(dir, 'empty'))).size, 0);
  });

  test('it never replaces an existing file', async () => {
    const dir = await tempDir('sparse');
    const file = path.join(dir, 'there');
    await fs.writeFile(file, 'keep');
    await assert.rejects(pipeline(Readable.from([Buffer.from('new')]), createSparseWriteStream(file)), {
      code: 'EEXIST',
    });
    assert.equal(await fs.readFile(file, 'utf8'), 'keep');
  });

  test('a tar of a sparse file is sparse too, and holds every byte of it', async () => {
    const dir = await tempDir('sparse');
    const source = path.join(dir, 'source');
    const content = mostlyZeros('data');
    await fs.writeFile(source, content);
    const tar = path.join(dir, 'out.tar');
    await writeTar(tar, [{ type: 'file-from', name: 'big', source }], { gzip: false });
    const bytes = await fs.readFile(tar);
    // One header block, then the content, padded to 512 bytes, then the end-of-archive blocks.
    assert.ok(bytes.subarray(512, 512 + content.length).equals(content));
    assert.ok(bytes.length >= 512 + content.length + 1024);
    assert.ok((await allocated(tar)) <= 8 * SPARSE_BLOCK, `${await allocated(tar)} bytes allocated`);
    const digest = (buffer: Buffer) => createHash('sha256').update(buffer).digest('hex');
    assert.equal(digest(bytes.subarray(512, 512 + content.length)), digest(content));
    await assert.rejects(writeTar(tar, [{ type: 'file-from', name: 'big', source }], { gzip: false }), {
      code: 'EEXIST',
    });
  });

  test('files written one after another reuse one carry buffer, and each holds its own bytes', async () => {
    // Unpacking a bundle writes tens of thousands of small files: a fresh block-sized buffer for each piles up as
    // garbage (native memory) faster than V8 collects it.
    const dir = await tempDir('sparse-carry');
    const contents = Array.from({ length: 200 }, (_, i) => randomBytes(1 + ((i * 7919) % (2 * SPARSE_BLOCK))));
    const before = carryBuffersAllocated();
    for (const [i, content] of contents.entries())
      await pipeline(chunked(content, i + 1), createSparseWriteStream(path.join(dir, `f${i}`)));
    assert.ok(carryBuffersAllocated() - before <= 1, `${carryBuffersAllocated() - before} carry buffers for 200 files`);
    for (const [i, content] of contents.entries())
      assert.ok((await fs.readFile(path.join(dir, `f${i}`))).equals(content), `f${i} holds what was written`);
  });
});
