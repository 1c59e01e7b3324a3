import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { keyIdOf } from '../../src/tuf/keys.js';
import { cli } from '../support/cli.js';
import { buildFactory, tempDir, type TestFactory } from '../support/factory.js';
import { hashTree } from '../support/tree-hash.js';

let factory: TestFactory;
before(async () => {
  factory = await buildFactory();
});

const readJson = async (file: string): Promise<any> => JSON.parse(await fs.readFile(file, 'utf8'));

describe('ferry repo init', () => {
  test('creates four roles with ed25519 keys, private keys 0600 in 0700 directories, 1.root.json and an archive OSTree repo', async () => {
    const dir = path.join(await tempDir('init'), 'repo');
    const result = await cli('repo', 'init', dir);
    assert.equal(result.code, 0, result.stderr);
    const root = await readJson(path.join(dir, 'tuf', '1.root.json'));
    assert.deepEqual(Object.keys(root.signed.roles).sort(), ['root', 'snapshot', 'targets', 'timestamp']);
    for (const role of ['root', 'targets', 'snapshot', 'timestamp']) {
      const [keyId] = root.signed.roles[role].keyids;
      const publicKey = root.signed.keys[keyId];
      assert.equal(publicKey.keytype, 'ed25519');
      assert.equal(keyIdOf(publicKey), keyId, `${role} key id`);
      const pem = path.join(dir, 'keys', role, `${keyId}.pem`);
      assert.equal((await fs.stat(pem)).mode & 0o777, 0o600);
      assert.equal((await fs.stat(path.dirname(pem))).mode & 0o777, 0o700);
    }
    assert.match(await fs.readFile(path.join(dir, 'ostree_repo', 'config'), 'utf8'), /mode=archive/);
    assert.ok((await fs.stat(path.join(dir, 'apps'))).isDirectory());
  });

  test('refuses a directory that is not empty (41)', async () => {
    const dir = await tempDir('init');
    await fs.writeFile(path.join(dir, 'something'), 'x');
    const result = await cli('repo', 'init', dir);
    assert.equal(result.code, 41);
    assert.match(result.stderr, /not empty/);
  });
});

describe('ferry target add', () => {
  test('records the target as Foundries does and re-signs targets, snapshot and timestamp with matching versions', async () => {
    const tuf = path.join(factory.repo.dir, 'tuf');
    const [targets, snapshot, timestamp] = await Promise.all(
      ['targets', 'snapshot', 'timestamp'].map((role) => readJson(path.join(tuf, `${role}.json`))),
    );
    const entry = targets.signed.targets[factory.v2];
    assert.deepEqual(entry.hashes, { sha256: factory.commits[factory.v2] });
    assert.equal(entry.length, 0);
    assert.equal(entry.custom.targetFormat, 'OSTREE');
    assert.equal(entry.custom.version, '2');
    assert.deepEqual(entry.custom.hardwareIds, ['ferry-sim']);
    assert.deepEqual(entry.custom.tags, ['main']);
    assert.equal(snapshot.signed.meta['targets.json'].version, targets.signed.version);
    assert.equal(timestamp.signed.meta['snapshot.json'].version, snapshot.signed.version);
    assert.ok(targets.signed.version >= 5, 'one targets version per add');
  });

  test('adding the same target again changes nothing; other content under the same name is refused (47)', async () => {
    const before = await hashTree(factory.repo.dir);
    const same = await cli(
      'target',
      'add',
      '--repo',
      factory.repo.dir,
      '--name',
      'sim-lmp',
      '--version',
      '1',
      '--hardware-id',
      'ferry-sim',
      '--tag',
      'main',
      '--commit',
      factory.commits[factory.v1]!,
    );
    assert.equal(same.code, 0, same.stderr);
    assert.match(same.stdout, /already recorded/);
    assert.equal(await hashTree(factory.repo.dir), before);
    const other = await cli(
      'target',
      'add',
      '--repo',
      factory.repo.dir,
      '--name',
      'sim-lmp',
      '--version',
      '1',
      '--hardware-id',
      'ferry-sim',
      '--tag',
      'main',
      '--commit',
      factory.commits[factory.v2]!,
    );
    assert.equal(other.code, 47);
    assert.equal(await hashTree(factory.repo.dir), before);
  });

  test('refuses an unknown commit (46), a bad version and missing options (2), a missing repo (40)', async () => {
    const base = [
      'target',
      'add',
      '--repo',
      factory.repo.dir,
      '--name',
      'sim-lmp',
      '--hardware-id',
      'ferry-sim',
      '--tag',
      'main',
    ];
    assert.equal((await cli(...base, '--version', '9', '--commit', 'f'.repeat(64))).code, 46);
    assert.equal((await cli(...base, '--version', '9', '--ref', 'no/such/ref')).code, 46);
    const badVersion = await cli(...base, '--version', 'v9', '--ref', 'x');
    assert.equal(badVersion.code, 2);
    assert.match(badVersion.stderr, /--version must be a decimal number/);
    assert.equal((await cli(...base, '--version', '9')).code, 2);
    assert.equal((await cli('target', 'add', '--repo', factory.repo.dir)).code, 2);
    const noRepo = await cli(
      'target',
      'add',
      '--repo',
      path.join(factory.dir, 'nope'),
      '--name',
      'a',
      '--version',
      '1',
      '--hardware-id',
      'h',
      '--tag',
      't',
      '--ref',
      'r',
    );
    assert.equal(noRepo.code, 40);
    assert.match(noRepo.stderr, /not a ferry factory repository/);
  });
});
