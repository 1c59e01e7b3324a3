import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { OstreeRepo } from '../../src/ostree/ostree-repo.js';
import { cli } from '../support/cli.js';
import { buildFactory, exportTo, tempDir, type TestFactory } from '../support/factory.js';
import { hashTree } from '../support/tree-hash.js';

let factory: TestFactory;
before(async () => {
  factory = await buildFactory({ rootExpiresInDays: 100 });
});

const readJson = async (file: string): Promise<any> => JSON.parse(await fs.readFile(file, 'utf8'));

describe('ferry export', () => {
  test('writes tuf/ and ostree_repo/ in the fioctl layout, expiring in N days, with a signed bundle-targets.json', async () => {
    const dst = path.join(await tempDir('export'), 'stick');
    const result = await cli(
      'export',
      '--repo',
      factory.repo.dir,
      factory.v2,
      dst,
      '--tag',
      'main',
      '--expires-in-days',
      '7',
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /verified/);
    assert.deepEqual((await fs.readdir(path.join(dst, 'tuf'))).sort(), [
      '1.root.json',
      'bundle-targets.json',
      'snapshot.json',
      'targets.json',
      'timestamp.json',
    ]);
    const sevenDays = Date.now() + 7 * 86_400_000;
    for (const role of ['timestamp', 'snapshot', 'targets', 'bundle-targets']) {
      const document = await readJson(path.join(dst, 'tuf', `${role}.json`));
      assert.match(document.signed.expires, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      assert.ok(
        Math.abs(new Date(document.signed.expires).getTime() - sevenDays) < 120_000,
        `${role} expires in 7 days`,
      );
      assert.ok(document.signatures.length >= 1);
    }
    const bundleTargets = await readJson(path.join(dst, 'tuf', 'bundle-targets.json'));
    assert.equal(bundleTargets.signed._type, 'bundle');
    const { signedAt, ...info } = bundleTargets.signed['x-ferry-bundle'];
    assert.deepEqual(info, { type: 'ci', tag: 'main', targets: [factory.v2] });
    // The time of export, signed with the rest, in TUF's date format (devices take it as their time floor).
    assert.match(signedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.ok(Math.abs(Date.parse(signedAt) - Date.now()) < 120_000, 'signedAt is the time of export');
    const ostree = new OstreeRepo(path.join(dst, 'ostree_repo'));
    assert.match((await ostree.readMode()) ?? '', /^archive/);
    assert.ok(await ostree.hasCommitObject(factory.commits[factory.v2]!));
    assert.equal(await ostree.hasCommitObject(factory.commits[factory.v1]!), false, 'only the target commit is copied');
  });

  test('--prod marks the bundle as production; each export signs newer metadata versions', async () => {
    const first = await exportTo(factory, factory.v2);
    const second = await exportTo(factory, factory.v2, { type: 'prod' });
    const [a, b] = await Promise.all([first, second].map((dir) => readJson(path.join(dir, 'tuf', 'timestamp.json'))));
    assert.ok(b.signed.version > a.signed.version);
    const [ta, tb] = await Promise.all(
      [first, second].map((dir) => readJson(path.join(dir, 'tuf', 'bundle-targets.json'))),
    );
    assert.ok(tb.signed.version > ta.signed.version);
    assert.equal(tb.signed['x-ferry-bundle'].type, 'prod');
  });

  const refusals: Array<[string, (dst: string) => string[], number, RegExp]> = [
    [
      'an unknown target',
      (dst) => ['export', '--repo', '', 'sim-lmp-99', dst, '--tag', 'main'],
      42,
      /no target "sim-lmp-99"/,
    ],
    [
      'a tag the target lacks',
      (dst) => ['export', '--repo', '', 'sim-lmp-2', dst, '--tag', 'devel'],
      43,
      /does not carry tag "devel"/,
    ],
    [
      'an expiry later than root.json',
      (dst) => ['export', '--repo', '', 'sim-lmp-2', dst, '--tag', 'main', '--expires-in-days', '200'],
      44,
      /after root\.json/,
    ],
    [
      'zero days',
      (dst) => ['export', '--repo', '', 'sim-lmp-2', dst, '--tag', 'main', '--expires-in-days', '0'],
      2,
      /at least 1/,
    ],
  ];
  for (const [name, args, code, reason] of refusals) {
    test(`refuses ${name} (${code}), writing nothing`, async () => {
      const dst = path.join(await tempDir('export'), 'stick');
      const before = await hashTree(factory.repo.dir);
      const result = await cli(...args(dst).map((arg) => (arg === '' ? factory.repo.dir : arg)));
      assert.equal(result.code, code, result.stderr);
      assert.match(result.stderr, reason);
      assert.equal(result.stderr.trim().split('\n').length, 1);
      await assert.rejects(fs.access(dst));
      assert.equal(await hashTree(factory.repo.dir), before);
    });
  }

  test('refuses a destination that is not empty (45), leaving its files alone', async () => {
    const dst = await tempDir('export');
    await fs.writeFile(path.join(dst, 'notes.txt'), 'keep me');
    const result = await cli('export', '--repo', factory.repo.dir, factory.v2, dst, '--tag', 'main');
    assert.equal(result.code, 45);
    assert.deepEqual(await fs.readdir(dst), ['notes.txt']);
  });

  test('the bundle shares no inode with the factory repository (ostree hard-links on one filesystem)', async () => {
    const bundle = await exportTo(factory, factory.v2);
    const objects = path.join(bundle, 'ostree_repo', 'objects');
    for (const prefix of await fs.readdir(objects)) {
      for (const name of await fs.readdir(path.join(objects, prefix))) {
        assert.equal((await fs.stat(path.join(objects, prefix, name))).nlink, 1, `${prefix}/${name} is hard-linked`);
      }
    }
  });

  test('by default the media is written once; --read-back then checks every byte, as verify does', async () => {
    const parent = await tempDir('export-read-back');
    const exportAs = (name: string, ...extra: string[]) =>
      cli('export', '--repo', factory.repo.dir, factory.v2, path.join(parent, name), '--tag', 'main', ...extra);
    const once = await exportAs('once');
    assert.equal(once.code, 0, once.stderr);
    assert.match(once.stdout, /verified as written/);
    const twice = await exportAs('twice', '--read-back');
    assert.equal(twice.code, 0, twice.stderr);
    assert.match(twice.stdout, /read back and verified/);
    // The same content either way, and nothing else on the media.
    assert.equal(
      await hashTree(path.join(parent, 'once', 'ostree_repo', 'objects')),
      await hashTree(path.join(parent, 'twice', 'ostree_repo', 'objects')),
    );
    assert.deepEqual((await fs.readdir(parent)).sort(), ['once', 'twice']);
  });

  test('an archive is built beside the factory, not on the media; nothing is left behind, nor what a killed export left', async () => {
    const parent = await tempDir('export-archive');
    const before = (await fs.readdir(factory.repo.dir)).sort();
    // What an export killed half-way left: the process that owned it is gone.
    const gone = spawnSync('true').pid!;
    const stale = path.join(factory.repo.dir, `.export-tree-${gone}-x1y2z3`);
    await fs.mkdir(path.join(stale, 'ostree_repo'), { recursive: true });
    for (const [name, extra] of [
      ['plain.tar', []],
      ['read-back.tar', ['--read-back']],
    ] as const) {
      const result = await cli(
        'export',
        '--repo',
        factory.repo.dir,
        factory.v2,
        path.join(parent, name),
        '--tag',
        'main',
        '--archive',
        'tar',
        ...extra,
      );
      assert.equal(result.code, 0, result.stderr);
    }
    assert.deepEqual((await fs.readdir(parent)).sort(), ['plain.tar', 'read-back.tar']);
    assert.deepEqual(
      (await fs.readdir(factory.repo.dir)).sort(),
      before,
      'no scratch tree left in the factory, old or new',
    );
    const shown = await cli('show', path.join(parent, 'plain.tar'), '--json');
    assert.equal(shown.code, 0, shown.stderr);
  });
});
