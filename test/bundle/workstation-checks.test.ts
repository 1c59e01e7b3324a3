import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { generateSigningKey } from '../../src/tuf/keys.js';
import { addOfflineTargetsKeys, rotateRoleKey } from '../../src/repo/rotate-keys.js';
import { addTarget } from '../../src/repo/add-target.js';
import { cli } from '../support/cli.js';
import {
  buildFactory,
  exportTo,
  HARDWARE_ID,
  OTHER_HARDWARE_ID,
  TAG,
  tempDir,
  type TestFactory,
} from '../support/factory.js';
import { makeDevice, statusOf, trustedMetadata } from '../support/sim-device.js';
import { flipByte } from '../support/hostile.js';
import { pastDate, resignBundleRole } from '../support/tamper.js';
import { hashTree } from '../support/tree-hash.js';
import { bundleLayout } from '../../src/bundle/format/bundle-dir.js';
import { verifyBundle } from '../../src/bundle/workstation/verify-bundle.js';
import type { FerryError } from '../../src/errors.js';

/** show, verify, bundle sign, keys and the multi-target and tuf-only exports: a stick checked before it ships. */

let factory: TestFactory;
before(async () => {
  factory = await buildFactory();
});

async function json(...args: string[]): Promise<{ code: number; data: Record<string, any>; stderr: string }> {
  const result = await cli(...args, '--json');
  return { code: result.code, data: JSON.parse(result.stdout || '{}'), stderr: result.stderr };
}

async function objectCount(bundle: string): Promise<number> {
  let count = 0;
  const objects = path.join(bundle, 'ostree_repo', 'objects');
  for (const prefix of await fs.readdir(objects)) count += (await fs.readdir(path.join(objects, prefix))).length;
  return count;
}

describe('ferry show', () => {
  test('type, tag, every role with version, expiry and signatures, the targets and the size', async () => {
    const bundle = await exportTo(factory, factory.v2);
    const text = await cli('show', bundle);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^type ci, tag main; bundle version \d+; \d+ bytes/);
    assert.match(
      text.stdout,
      /timestamp\.json\s+version \d+\s+expires \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+signatures 1\/1 valid/,
    );
    assert.match(text.stdout, new RegExp(`${factory.v2} version 2, hardware ${HARDWARE_ID}, tags ${TAG}`));
    assert.match(text.stdout, /every threshold is met/);

    const { code, data } = await json('show', bundle);
    assert.equal(code, 0);
    assert.deepEqual(
      data['roles'].map((role: any) => role.file),
      ['1.root.json', 'timestamp.json', 'snapshot.json', 'targets.json', 'bundle-targets.json'],
    );
    assert.equal(data['signaturesMissing'], 0);
    assert.equal(data['targets'][0].contentPresent, true);
    assert.equal(data['expires'], [...data['roles'].map((role: any) => role.expires)].sort()[0]);
    assert.ok(data['sizeBytes'] > 1000);
  });

  test('a signature that does not verify is shown as missing; a bundle of a tar is shown the same', async () => {
    const bundle = await exportTo(factory, factory.v2);
    const file = path.join(bundle, 'tuf', 'timestamp.json');
    const document = JSON.parse(await fs.readFile(file, 'utf8'));
    document.signatures[0].sig = document.signatures[0].sig.replace(/^./, (c: string) => (c === '0' ? '1' : '0'));
    await fs.writeFile(file, JSON.stringify(document));
    const { data } = await json('show', bundle);
    const timestamp = data['roles'].find((role: any) => role.file === 'timestamp.json');
    assert.deepEqual([timestamp.valid, timestamp.threshold, timestamp.missing], [0, 1, 1]);
    assert.equal(data['signaturesMissing'], 1);

    const archive = path.join(await tempDir('show-tar'), 'bundle.tar');
    await exportTo(factory, factory.v2, { destination: archive, archive: 'tar' });
    const fromTar = await json('show', archive);
    assert.equal(fromTar.code, 0, fromTar.stderr);
    assert.equal(fromTar.data['targets'][0].name, factory.v2);
  });

  test('an expired bundle is marked EXPIRED, naming the roles, in the text and in --json', async () => {
    const fresh = await json('show', await exportTo(factory, factory.v2));
    assert.deepEqual(fresh.data['expired'], []);
    assert.ok(fresh.data['roles'].every((role: any) => role.expired === false));

    const bundle = await exportTo(factory, factory.v2);
    await resignBundleRole(factory.repo, bundle, 'timestamp', (signed) => ({ ...signed, expires: pastDate(1) }));
    const text = await cli('show', bundle);
    assert.equal(text.code, 0, text.stderr);
    assert.match(
      text.stdout,
      /^EXPIRED at \S+Z \(timestamp\.json\): devices refuse it \(12\); export a fresh bundle$/m,
    );
    assert.match(text.stdout, /timestamp\.json\s+version \d+\s+EXPIRED \S+Z/);
    assert.match(text.stdout, /snapshot\.json\s+version \d+\s+expires \S+Z/);
    const { data } = await json('show', bundle);
    assert.deepEqual(data['expired'], ['timestamp.json']);
    assert.equal(data['roles'].find((role: any) => role.file === 'timestamp.json').expired, true);
  });

  test('not a bundle: 13, one line', async () => {
    const result = await cli('show', await tempDir('not-a-bundle'));
    assert.equal(result.code, 13);
    assert.equal(result.stderr.trimEnd().split('\n').length, 1);
  });
});

describe('ferry verify', () => {
  test('a good bundle: 0, from its own root or a given trusted root, with its size', async () => {
    const bundle = await exportTo(factory, factory.v2);
    const own = await json('verify', bundle);
    assert.equal(own.code, 0, own.stderr);
    assert.equal(own.data['targets'][0].name, factory.v2);
    assert.ok(own.data['sizeBytes'] > 0);
    const trusted = await cli('verify', bundle, '--trusted-root', (await factory.repo.rootFiles())[0]!);
    assert.equal(trusted.code, 0, trusted.stderr);
    assert.match(trusted.stdout, /^verified: a "ci" bundle for tag main/);
  });

  test('the root of another factory: 11; expired: 12; a commit missing: 8; a changed object: 70', async () => {
    const other = await buildFactory();
    const bundle = await exportTo(factory, factory.v2);
    const foreign = await cli('verify', bundle, '--trusted-root', (await other.repo.rootFiles())[0]!);
    assert.equal(foreign.code, 11, foreign.stderr);

    const expired = await exportTo(factory, factory.v2);
    await resignBundleRole(factory.repo, expired, 'timestamp', (signed) => ({ ...signed, expires: pastDate(1) }));
    assert.equal((await cli('verify', expired)).code, 12);

    const missing = await exportTo(factory, factory.v2);
    const commit = factory.commits[factory.v2]!;
    await fs.rm(path.join(missing, 'ostree_repo', 'objects', commit.slice(0, 2), `${commit.slice(2)}.commit`));
    const lacking = await cli('verify', missing);
    assert.equal(lacking.code, 8, lacking.stderr);

    const damaged = await exportTo(factory, factory.v2);
    const objects = path.join(damaged, 'ostree_repo', 'objects');
    let found: [string, string] | undefined;
    for (const prefix of await fs.readdir(objects)) {
      const file = (await fs.readdir(path.join(objects, prefix))).find((name) => name.endsWith('.filez'));
      if (file !== undefined) found = [prefix, file];
    }
    const [prefix, file] = found!;
    await flipByte(path.join(objects, prefix, file), 40);
    const broken = await cli('verify', damaged);
    assert.equal(broken.code, 70, broken.stderr);
    assert.equal(broken.stderr.trimEnd().split('\n').length, 1);
  });
});

describe('files given on the command line that are not what the command needs', () => {
  test('verify: an unreadable trusted root is 24, one that is not a root.json 26; the bundle lacking its own root 14', async () => {
    const bundle = await exportTo(factory, factory.v2);
    const dir = await tempDir('trusted-roots');
    const unreadable = path.join(dir, 'unreadable.json');
    // A directory where the file is read: readable as a path, not as a file, for root as for anyone.
    await fs.mkdir(unreadable);
    const notRoot = path.join(dir, 'targets.json');
    await fs.copyFile(path.join(bundle, 'tuf', 'targets.json'), notRoot);
    const garbage = path.join(dir, 'garbage.json');
    await fs.writeFile(garbage, 'not json');
    for (const [file, code, reason] of [
      [notRoot, 26, /is not a root\.json/],
      [garbage, 26, /is not a root\.json/],
    ] as const) {
      const result = await json('verify', bundle, '--trusted-root', file);
      assert.equal(result.code, code, result.stderr);
      assert.match(result.stderr, reason);
      assert.equal(result.stderr.trimEnd().split('\n').length, 1);
      assert.match(result.data['message'], reason, 'the same reason in --json');
    }
    // On the command line a directory given for a file is the path check's (63); below it, the read fails.
    assert.equal((await cli('verify', bundle, '--trusted-root', unreadable)).code, 63);
    await assert.rejects(verifyBundle(bundleLayout(bundle), { trustedRoot: unreadable }), (error: FerryError) => {
      assert.equal(error.outcome, 'TRUSTED_ROOT_UNREADABLE');
      assert.match(error.message, /^cannot read the trusted root .*unreadable\.json: /);
      return true;
    });
    const ownRootless = await exportTo(factory, factory.v2);
    await fs.rm(path.join(ownRootless, 'tuf', '1.root.json'));
    const lacking = await cli('verify', ownRootless);
    assert.equal(lacking.code, 14, lacking.stderr);
  });

  test('bundle sign: a key file that is not an ed25519 private key is 23, and the bundle is unchanged', async () => {
    const bundle = await exportTo(factory, factory.v2);
    const before = await hashTree(bundle);
    const key = path.join(await tempDir('bad-key'), 'key.pem');
    await fs.writeFile(key, '-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n');
    const result = await json('bundle', 'sign', bundle, '--key', key);
    assert.equal(result.code, 23, result.stderr);
    assert.match(result.stderr, /^ferry: .*key\.pem is not an ed25519 private key \(PKCS#8 PEM\)/);
    assert.equal(result.stderr.trimEnd().split('\n').length, 1);
    assert.equal(result.data['outcome'], 'KEY_FILE_INVALID');
    assert.equal(await hashTree(bundle), before);
  });
});

describe('offline targets keys, bundle sign and production bundles', () => {
  test('a prod bundle needs the offline threshold: 11 on verify and on the device until signed, then accepted', async () => {
    const prodFactory = await buildFactory();
    const keysDir = path.join(await tempDir('offline-keys'), 'keys');
    const added = await addOfflineTargetsKeys(prodFactory.repo, { count: 2, threshold: 2, outDir: keysDir });
    assert.equal(added.rootVersion, 2);
    assert.equal(added.files.length, 2);
    for (const file of added.files) assert.equal((await fs.stat(file)).mode & 0o777, 0o600);

    const bundle = await exportTo(prodFactory, prodFactory.v2, { type: 'prod' });
    const shown = await json('show', bundle);
    assert.deepEqual(shown.data['offline'], { valid: 0, threshold: 2, missing: 2 });
    assert.equal(shown.data['signaturesMissing'], 2);

    const device = await makeDevice(prodFactory, prodFactory.v1, { production: true });
    const before = await device.fingerprint();
    const refused = await cli('install', '--config', device.configDir, '--src-dir', bundle);
    assert.equal(refused.code, 11, refused.stderr);
    assert.match(refused.stderr, /needs 2 signature\(s\) of offline targets keys, it has 0/);
    assert.equal(await device.fingerprint(), before);
    assert.equal((await cli('verify', bundle)).code, 11);

    const stranger = path.join(await tempDir('stranger'), 'key.pem');
    await fs.writeFile(stranger, generateSigningKey().privatePem);
    const notAuthorized = await cli('bundle', 'sign', bundle, '--key', stranger);
    assert.equal(notAuthorized.code, 58, notAuthorized.stderr);

    const first = await json('bundle', 'sign', bundle, '--key', added.files[0]!);
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(first.data['offline'], { valid: 1, threshold: 2 });
    const again = await cli('bundle', 'sign', bundle, '--key', added.files[0]!);
    assert.match(again.stdout, /already signed/);
    assert.equal((await cli('verify', bundle)).code, 11, 'one of two is not enough, and signing twice counts once');

    assert.equal((await cli('bundle', 'sign', bundle, '--key', added.files[1]!)).code, 0);
    const verified = await cli('verify', bundle);
    assert.equal(verified.code, 0, verified.stderr);
    const installed = await cli('install', '--config', device.configDir, '--src-dir', bundle);
    assert.equal(installed.code, 100, installed.stderr);
  });
});

describe('keys rotate and export --tuf-only', () => {
  test('after a targets key rotation the old stick is refused by a device that learnt the new root; a refreshed one installs', async () => {
    const rotating = await buildFactory();
    const stale = await exportTo(rotating, rotating.v2);
    const rotated = await json('keys', 'rotate', '--repo', rotating.repo.dir, '--role', 'targets');
    assert.equal(rotated.code, 0, rotated.stderr);
    assert.equal(rotated.data['rootVersion'], 2);
    assert.equal((await rotating.repo.keys.load('targets')).length, 1);
    assert.equal((await fs.readdir(path.join(rotating.repo.dir, 'keys', 'targets', 'retired'))).length, 1);

    const staleCopy = `${stale}-copy`;
    await fs.cp(stale, staleCopy, { recursive: true });
    const tufOnly = await cli('export', rotating.v2, stale, '--repo', rotating.repo.dir, '--tag', TAG, '--tuf-only');
    assert.equal(tufOnly.code, 0, tufOnly.stderr);
    assert.deepEqual((await fs.readdir(path.join(stale, 'tuf'))).filter((name) => name.endsWith('.root.json')).sort(), [
      '1.root.json',
      '2.root.json',
    ]);

    const device = await makeDevice(rotating, rotating.v1);
    const install = await cli('install', '--config', device.configDir, '--src-dir', stale);
    assert.equal(install.code, 100, install.stderr);
    assert.equal((await trustedMetadata(device, 'root.json')).signed['version'], 2, 'the device walked to root 2');
    assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
    assert.equal((await cli('run', '--config', device.configDir)).code, 0);
    const before = await device.fingerprint();
    const old = await cli('install', '--config', device.configDir, '--src-dir', staleCopy);
    // Exported before the rotation, it is older than what the device took since: that is what it is told first.
    assert.equal(old.code, 18, `a stick signed by the retired key: ${old.stderr}`);
    assert.match(old.stderr, /this stick is older than the metadata this device trusts .*: export a fresh stick/);
    assert.equal(await device.fingerprint(), before);
  });

  test('a root key rotation: the next root is signed by the old and the new root keys, and devices follow it', async () => {
    const rotating = await buildFactory();
    const oldRoot = (await rotating.repo.keys.load('root'))[0]!.keyId;
    const result = await rotateRoleKey(rotating.repo, 'root');
    const next = JSON.parse(
      await fs.readFile(path.join(rotating.repo.tufDir, `${result.rootVersion}.root.json`), 'utf8'),
    );
    assert.deepEqual(
      next.signatures.map((signature: any) => signature.keyid).sort(),
      [oldRoot, result.keyIds[0]].sort(),
    );
    assert.deepEqual(next.signed.roles.root.keyids, result.keyIds);
    const bundle = await exportTo(rotating, rotating.v2);
    const device = await makeDevice(rotating, rotating.v1);
    assert.equal((await cli('install', '--config', device.configDir, '--src-dir', bundle)).code, 100);
    assert.equal((await trustedMetadata(device, 'root.json')).signed['version'], 2);
  });

  test('--tuf-only for a target the stick does not carry, or into an empty directory: refused, the stick unchanged', async () => {
    const bundle = await exportTo(factory, factory.v2);
    const before = await fs.readFile(path.join(bundle, 'tuf', 'bundle-targets.json'), 'utf8');
    const wrong = await cli('export', factory.v1, bundle, '--repo', factory.repo.dir, '--tag', TAG, '--tuf-only');
    assert.equal(wrong.code, 42, wrong.stderr);
    assert.equal(await fs.readFile(path.join(bundle, 'tuf', 'bundle-targets.json'), 'utf8'), before);
    const empty = await cli(
      'export',
      factory.v2,
      await tempDir('empty'),
      '--repo',
      factory.repo.dir,
      '--tag',
      TAG,
      '--tuf-only',
    );
    assert.equal(empty.code, 13, empty.stderr);
  });
});

describe('one stick, many devices', () => {
  test('two targets for two hardware ids on one stick, content shared; each device installs its own', async () => {
    const multi = await buildFactory();
    // A first target for the other board, so that a device of that board exists to update.
    const other0 = await addTarget(multi.repo, {
      name: 'sim-lmp',
      version: '0',
      hardwareIds: [OTHER_HARDWARE_ID],
      tags: [TAG],
      commit: multi.commits[multi.v1]!,
    });
    const single = await exportTo(multi, multi.v2);
    const singleOther = await exportTo(multi, multi.otherBoard);

    const bundle = await exportTo(multi, multi.v2);
    const added = await cli(
      'export',
      multi.otherBoard,
      bundle,
      '--repo',
      multi.repo.dir,
      '--tag',
      TAG,
      '--allow-multiple-targets',
      '--json',
    );
    assert.equal(added.code, 0, added.stderr);
    assert.deepEqual(JSON.parse(added.stdout)['targets'], [multi.v2, multi.otherBoard]);
    assert.ok(
      (await objectCount(bundle)) < (await objectCount(single)) + (await objectCount(singleOther)),
      'objects the two rootfs share are stored once',
    );
    assert.equal((await cli('verify', bundle)).code, 0);

    const board = await makeDevice(multi, multi.v1);
    const otherBoard = await makeDevice(multi, other0.name, { hardwareId: OTHER_HARDWARE_ID });
    for (const [device, expected] of [
      [board, multi.v2],
      [otherBoard, multi.otherBoard],
    ] as const) {
      const install = await cli('install', '--config', device.configDir, '--src-dir', bundle);
      assert.equal(install.code, 100, install.stderr);
      assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
      assert.equal((await cli('run', '--config', device.configDir)).code, 0);
      assert.equal((await statusOf(device))['current'].name, expected);
    }
  });

  test('adding to a bundle of another type (25), or to a tar (2): refused with the stick and the factory unchanged', async () => {
    const bundle = await exportTo(factory, factory.v2);
    const before = await fs.readFile(path.join(bundle, 'tuf', 'bundle-targets.json'), 'utf8');
    const stickBefore = await hashTree(bundle);
    const factoryBefore = await hashTree(factory.repo.dir);
    const prod = await cli(
      'export',
      factory.otherBoard,
      bundle,
      '--repo',
      factory.repo.dir,
      '--tag',
      TAG,
      '--prod',
      '--allow-multiple-targets',
    );
    assert.equal(prod.code, 25, prod.stderr);
    assert.equal(prod.stderr, `ferry: ${bundle} is a "ci" bundle; a "prod" export cannot be added to it\n`);
    assert.equal(await fs.readFile(path.join(bundle, 'tuf', 'bundle-targets.json'), 'utf8'), before);
    assert.equal(await hashTree(bundle), stickBefore);
    assert.equal(await hashTree(factory.repo.dir), factoryBefore, 'no factory version moved');
    const tar = await cli(
      'export',
      factory.v2,
      path.join(await tempDir('t'), 'b.tar'),
      '--repo',
      factory.repo.dir,
      '--tag',
      TAG,
      '--archive',
      'tar',
      '--allow-multiple-targets',
    );
    assert.equal(tar.code, 2);
  });
});
