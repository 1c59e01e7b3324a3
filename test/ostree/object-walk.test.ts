import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import {
  describeDamagedObject,
  findBadObject,
  findMissingObject,
  objectPath,
  walkCommit,
  type ReachedObject,
} from '../../src/ostree/object-walk.js';
import { OstreeRepo } from '../../src/ostree/ostree-repo.js';
import { tempDir } from '../support/factory.js';
import { flipByte } from '../support/hostile.js';

/**
 * The walk reads commits and dirtrees itself: it must reach exactly the objects ostree wrote for a commit, in
 * dirtrees small and large (GVariant framing offsets of 1, 2 and 4 bytes), and stop at an absent or damaged one.
 */

let repo: OstreeRepo;
let commit: string;

const key = (object: ReachedObject) => `${object.checksum}.${object.kind}`;

async function objectsOnDisk(repoPath: string): Promise<string[]> {
  const found: string[] = [];
  const root = path.join(repoPath, 'objects');
  for (const prefix of await fs.readdir(root))
    for (const name of await fs.readdir(path.join(root, prefix))) {
      const [rest, extension] = name.split('.');
      found.push(`${prefix}${rest}.${extension === 'filez' ? 'file' : extension}`);
    }
  return found.sort();
}

before(async () => {
  const dir = await tempDir('object-walk');
  const tree = path.join(dir, 'tree');
  await fs.mkdir(path.join(tree, 'small', 'nested', 'deeper'), { recursive: true });
  await fs.writeFile(path.join(tree, 'small', 'a'), 'a\n');
  await fs.writeFile(path.join(tree, 'small', 'nested', 'deeper', 'b'), 'b\n');
  await fs.mkdir(path.join(tree, 'empty'));
  await fs.symlink('small/a', path.join(tree, 'link'));
  // A dirtree of some 300 entries (2-byte offsets) and one of some 1,200 with long names (over 64 KiB: 4-byte).
  await fs.mkdir(path.join(tree, 'medium'));
  for (let i = 0; i < 300; i++) await fs.writeFile(path.join(tree, 'medium', `f${i}`), `medium ${i}\n`);
  await fs.mkdir(path.join(tree, 'large'));
  for (let i = 0; i < 1200; i++)
    await fs.writeFile(path.join(tree, 'large', `${'long-file-name-'.repeat(3)}${i}`), `large ${i}\n`);
  repo = await OstreeRepo.create(path.join(dir, 'repo'), 'archive');
  commit = await repo.commitTree({ tree, branch: 'walk', subject: 'walk test' });
});

describe('walking an OSTree commit from its own objects', () => {
  test('reaches exactly the objects ostree wrote for the commit', async () => {
    const reached: string[] = [];
    const stop = await walkCommit(commit, [repo.path], (object) => reached.push(key(object)));
    assert.equal(stop, undefined);
    assert.deepEqual(reached.sort(), await objectsOnDisk(repo.path));
    assert.ok(reached.length > 1500);
  });

  test('finds objects by listing each prefix directory once per repo, not by a stat per object', async (t) => {
    const lstat = t.mock.method(fs, 'lstat');
    const readdir = t.mock.method(fs, 'readdir');
    const empty = path.join(await tempDir('object-walk-empty'), 'repo');
    await OstreeRepo.create(empty, 'bare-user');
    let reached = 0;
    // The device's repo first, as install asks: every object is looked for there, then found in the bundle's.
    assert.equal(await walkCommit(commit, [empty, repo.path], () => reached++), undefined);
    assert.ok(reached > 1500);
    assert.equal(lstat.mock.callCount(), 0);
    assert.ok(readdir.mock.callCount() <= 2 * 256, `${readdir.mock.callCount()} directory reads`);
  });

  for (const [label, pick] of [
    ['a file object in the large dirtree', (o: ReachedObject) => o.kind === 'file' && o.where.startsWith('/large/')],
    ['a nested dirtree', (o: ReachedObject) => o.kind === 'dirtree' && o.where === '/small/nested/deeper'],
    ['the symlink', (o: ReachedObject) => o.kind === 'file' && o.where === '/link'],
  ] as const) {
    test(`finds ${label} absent, by its path in the tree; present in a second repo, it counts`, async () => {
      const copy = path.join(await tempDir('object-walk-copy'), 'repo');
      await fs.cp(repo.path, copy, { recursive: true });
      const objects: ReachedObject[] = [];
      await walkCommit(commit, [copy], (object) => objects.push(object));
      const victim = objects.find(pick)!;
      assert.ok(victim, label);
      const file = (await fs.readdir(path.join(copy, 'objects', victim.checksum.slice(0, 2)))).find((name) =>
        name.startsWith(victim.checksum.slice(2)),
      )!;
      await fs.rm(path.join(copy, 'objects', victim.checksum.slice(0, 2), file));
      assert.deepEqual(await findMissingObject(commit, [copy]), victim);
      assert.equal(await findMissingObject(commit, [copy, repo.path]), undefined);
    });
  }

  test('a damaged dirtree is not followed, and not reported as missing', async () => {
    const copy = path.join(await tempDir('object-walk-damaged'), 'repo');
    await fs.cp(repo.path, copy, { recursive: true });
    const objects: ReachedObject[] = [];
    await walkCommit(commit, [copy], (object) => objects.push(object));
    const victim = objects.find((object) => object.kind === 'dirtree' && object.where === '/large')!;
    await flipByte(path.join(copy, objectPath(victim.checksum, 'dirtree')), 8);
    const stop = await walkCommit(commit, [copy]);
    assert.equal(stop?.reason, 'damaged');
    assert.deepEqual(stop?.object, victim);
    assert.equal(await findMissingObject(commit, [copy]), undefined);
  });

  test('findBadObject checks compressed file objects too, and only where they are found first', async () => {
    assert.equal(await findBadObject(commit, [repo.path]), undefined, 'a sound commit');
    const copy = path.join(await tempDir('object-walk-damaged-file'), 'repo');
    await fs.cp(repo.path, copy, { recursive: true });
    const objects: ReachedObject[] = [];
    await walkCommit(commit, [copy], (object) => objects.push(object));
    const victim = objects.find((object) => object.kind === 'file' && object.where === '/small/a')!;
    await flipByte(path.join(copy, objectPath(victim.checksum, 'file')));
    assert.equal(await walkCommit(commit, [copy]), undefined, 'a plain walk reads no file object');
    const stop = await findBadObject(commit, [copy]);
    assert.equal(stop?.reason, 'damaged');
    assert.deepEqual(stop?.object, victim);
    if (stop?.reason === 'damaged')
      assert.match(
        describeDamagedObject(stop),
        /^ostree_repo\/objects\/\S+\.filez \(the file of \/small\/a\) is damaged: /,
      );
    // A sound copy in a repo listed first is the one used: the damaged one is never needed.
    assert.equal(await findBadObject(commit, [repo.path, copy]), undefined);
  });
});
