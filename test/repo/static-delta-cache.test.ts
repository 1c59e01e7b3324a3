import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { STATIC_DELTA_CACHE_DIR, staticDeltaFor } from '../../src/repo/static-delta-cache.js';
import { fileDigest } from '../../src/util/file-digest.js';
import { buildFactory, exportTo, tempDir, type TestFactory } from '../support/factory.js';
import { flipByte } from '../support/hostile.js';

/**
 * Static deltas are made once per change and kept in the factory: a second export copies the kept file, and a kept
 * file that no longer matches what was measured when it was made is made again, never used.
 */

let factory: TestFactory;
let to: string;
let from: string;
before(async () => {
  factory = await buildFactory();
  to = factory.commits[factory.v2]!;
  from = factory.commits[factory.v1]!;
});

const keptFile = (base: string | undefined) =>
  path.join(factory.repo.dir, STATIC_DELTA_CACHE_DIR, `${base ?? 'empty'}-${to}.delta`);

describe('the factory keeps the static deltas it made', () => {
  test('made on first use, then the kept file is checked and used; from nothing and from a base apart', async () => {
    await fs.rm(path.join(factory.repo.dir, STATIC_DELTA_CACHE_DIR), { recursive: true, force: true });
    const made = await staticDeltaFor(factory.repo, { to });
    assert.equal(made.generated, true);
    assert.equal(made.file, keptFile(undefined));
    assert.deepEqual(await fileDigest(made.file), { length: made.length, sha256: made.sha256 });
    const again = await staticDeltaFor(factory.repo, { to });
    assert.deepEqual(again, { ...made, generated: false });
    const fromBase = await staticDeltaFor(factory.repo, { to, from });
    assert.equal(fromBase.generated, true);
    assert.equal(fromBase.file, keptFile(from));
    assert.ok(fromBase.length < made.length, `${fromBase.length} B from the base, ${made.length} B from nothing`);
  });

  test('a damaged kept delta, or one without its record, is made again', async () => {
    const made = await staticDeltaFor(factory.repo, { to });
    await flipByte(made.file, Math.floor(made.length / 2));
    const remade = await staticDeltaFor(factory.repo, { to });
    assert.equal(remade.generated, true);
    assert.deepEqual(await fileDigest(remade.file), { length: remade.length, sha256: remade.sha256 });
    await fs.writeFile(`${remade.file}.json`, '{"length": "not a number"');
    assert.equal((await staticDeltaFor(factory.repo, { to })).generated, true);
    await fs.rm(`${remade.file}.json`);
    assert.equal((await staticDeltaFor(factory.repo, { to })).generated, true);
  });

  test('what an export killed while it made a delta left behind goes', async () => {
    await staticDeltaFor(factory.repo, { to });
    // A process that has exited: its pid is free.
    const dead = spawnSync('true').pid!;
    const left = `${keptFile(undefined)}.tmp-${dead}`;
    await fs.writeFile(left, 'half a delta');
    await fs.rm(`${keptFile(undefined)}.json`);
    await staticDeltaFor(factory.repo, { to });
    await assert.rejects(fs.stat(left), { code: 'ENOENT' });
  });

  test('a second export of the same target writes the same bytes from the kept delta', async () => {
    const bundles = await tempDir('static-delta-cache');
    const exported: Array<{ length: number; sha256: string }> = [];
    const keptInodes: number[] = [];
    for (const name of ['first', 'second']) {
      const bundle = await exportTo(factory, factory.v2, {
        destination: path.join(bundles, name),
        rootfs: 'static-delta',
      });
      exported.push(await fileDigest(path.join(bundle, 'rootfs', `${to}.delta`)));
      keptInodes.push((await fs.stat(keptFile(undefined))).ino);
    }
    assert.deepEqual(exported[1], exported[0]);
    // Not made again: the kept file is the one the first export left (a new one would be a new inode, renamed in).
    assert.equal(keptInodes[1], keptInodes[0]);
    const kept = JSON.parse(await fs.readFile(`${keptFile(undefined)}.json`, 'utf8'));
    assert.deepEqual(kept, exported[0]);
  });
});
