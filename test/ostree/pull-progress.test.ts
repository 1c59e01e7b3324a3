import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { OstreeRepo } from '../../src/ostree/ostree-repo.js';
import { PullCounter, withPullProgress } from '../../src/ostree/pull-progress.js';
import { tempDir } from '../support/factory.js';

/** A source repo with one commit of `files` (name → content), and an empty archive repo to pull it into. */
async function repos(files: Record<string, string>): Promise<{ source: OstreeRepo; commit: string; dir: string }> {
  const dir = await tempDir('pull-progress');
  const tree = path.join(dir, 'tree');
  await fs.mkdir(path.join(tree, 'sub'), { recursive: true });
  for (const [name, content] of Object.entries(files)) await fs.writeFile(path.join(tree, name), content);
  const source = await OstreeRepo.create(path.join(dir, 'source'), 'archive');
  const commit = await source.commitTree({ tree, branch: 'main', subject: 'test' });
  return { source, commit, dir };
}

const objectPath = (repo: OstreeRepo, checksum: string, under = 'objects') =>
  path.join(repo.path, under, checksum.slice(0, 2), `${checksum.slice(2)}.filez`);

describe('progress of an ostree pull, counted from the objects it writes', () => {
  test('each file object is counted once, with its content size, when it appears staged or committed', async () => {
    const files = { a: 'x'.repeat(1000), 'sub/b': 'y'.repeat(3000), 'sub/c': 'x'.repeat(1000), d: 'z'.repeat(7) };
    const { source, commit, dir } = await repos(files);
    const sizes = await source.fileObjectSizes(commit);
    // a and sub/c hold the same bytes: one object.
    assert.deepEqual(
      [...sizes.values()].sort((x, y) => x - y),
      [7, 1000, 3000],
    );

    const destination = await OstreeRepo.create(path.join(dir, 'destination'), 'archive');
    const counter = new PullCounter(destination, sizes, new Set());
    assert.equal(counter.total, 4007);
    assert.equal(await counter.sample(), 0);

    const [first, second, third] = [...sizes.keys()];
    // Staged by a pull that has not committed yet: counted.
    const staged = objectPath(destination, first!, 'tmp/staging-test-1');
    await fs.mkdir(path.dirname(staged), { recursive: true });
    await fs.copyFile(objectPath(source, first!), staged);
    assert.equal(await counter.sample(), sizes.get(first!));
    // Moved into objects/ when the transaction commits: not counted again.
    await fs.mkdir(path.dirname(objectPath(destination, first!)), { recursive: true });
    await fs.rename(staged, objectPath(destination, first!));
    assert.equal(await counter.sample(), sizes.get(first!));
    for (const checksum of [second!, third!]) {
      await fs.mkdir(path.dirname(objectPath(destination, checksum)), { recursive: true });
      await fs.copyFile(objectPath(source, checksum), objectPath(destination, checksum));
    }
    assert.equal(await counter.sample(), 4007);
  });

  test('a real pull reports bytes that only grow and end at the total the destination lacked', async () => {
    const { source, commit, dir } = await repos({ a: 'a'.repeat(5000), 'sub/b': 'b'.repeat(2000) });
    const destination = await OstreeRepo.create(path.join(dir, 'destination'), 'archive');
    const seen: Array<[number, number]> = [];
    await withPullProgress(
      { source, destination, commit },
      (bytes, total) => seen.push([bytes, total]),
      () => destination.pullLocal(source.path, commit, { untrusted: true }),
    );
    assert.deepEqual(seen.at(-1), [7000, 7000]);
    assert.ok(seen.every(([bytes, total], i) => total === 7000 && (i === 0 || bytes >= seen[i - 1]![0])));

    // A second commit sharing a: only what the destination lacks is counted.
    const tree = path.join(dir, 'tree');
    await fs.writeFile(path.join(tree, 'sub', 'b'), 'c'.repeat(300));
    const next = await source.commitTree({ tree, branch: 'main', subject: 'next' });
    const more: Array<[number, number]> = [];
    await withPullProgress(
      { source, destination, commit: next },
      (bytes, total) => more.push([bytes, total]),
      () => destination.pullLocal(source.path, next, { untrusted: true }),
    );
    assert.deepEqual(more.at(-1), [300, 300]);
  });

  test('a failed pull reports no completion, and nothing after it failed', async () => {
    const { source, commit, dir } = await repos({ a: 'a'.repeat(100) });
    const destination = await OstreeRepo.create(path.join(dir, 'destination'), 'archive');
    const seen: Array<[number, number]> = [];
    await assert.rejects(
      withPullProgress(
        { source, destination, commit },
        (bytes, total) => seen.push([bytes, total]),
        async () => {
          throw new Error('the stick went away');
        },
      ),
      /the stick went away/,
    );
    const count = seen.length;
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(seen.length, count);
    assert.ok(seen.every(([bytes, total]) => bytes < total));
  });
});
