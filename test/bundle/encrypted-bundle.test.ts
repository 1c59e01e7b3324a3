import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import tar from 'tar-stream';
import { createReadStream } from 'node:fs';
import { openSealedBundle, PAYLOAD_MEMBER, ENVELOPE_MEMBER } from '../../src/bundle/format/encrypted-bundle.js';
import { bundleTargetsOf, certifiedRecipient } from '../support/encrypted.js';
import { akliteOffline, cli } from '../support/cli.js';
import { buildFactory, exportTo, tempDir, type TestFactory } from '../support/factory.js';
import { assertRefused, makeDevice, statusOf, type TestDevice } from '../support/sim-device.js';
import { hashTree } from '../support/tree-hash.js';

/**
 * Encrypted bundles end to end: devices provisioned with a decryption key, certified by the factory's device CA; a
 * fleet key given to another device; `export --encrypt-to` for them; and what each device, and a device that is not
 * a recipient, does with the one file. A changed byte of the ciphertext or of the envelope is refused before anything
 * is decrypted.
 */

let factory: TestFactory;
let bundle: string;
let plainTar: string;
let recipientA: TestDevice;
let recipientB: TestDevice;
let fleetDevice: TestDevice;
let stranger: TestDevice;
let keyOfA: string;

/** The members of a tar, in order. */
async function membersOf(file: string): Promise<string[]> {
  const names: string[] = [];
  const extract = tar.extract();
  extract.on('entry', (header, stream, next) => {
    names.push(header.name);
    stream.on('end', next);
    stream.resume();
  });
  const done = new Promise((resolve, reject) => {
    extract.on('finish', () => resolve(undefined));
    extract.on('error', reject);
  });
  createReadStream(file).pipe(extract);
  await done;
  return names;
}

/** Where a member's content starts in a tar ferry wrote (ustar, no long names): found by its header's name. */
async function contentOffsetOf(file: string, member: string): Promise<number> {
  const bytes = await fs.readFile(file);
  for (let offset = 0; offset + 512 <= bytes.length; offset += 512) {
    if (
      bytes.subarray(offset, offset + member.length).toString('latin1') === member &&
      bytes[offset + member.length] === 0
    )
      return offset + 512;
  }
  throw new Error(`no header for ${member} in ${file}`);
}

async function copyWithFlippedByte(file: string, offset: number): Promise<string> {
  const copy = path.join(await tempDir('tampered'), path.basename(file));
  const bytes = await fs.readFile(file);
  bytes[offset] = bytes[offset]! ^ 0x01;
  await fs.writeFile(copy, bytes);
  return copy;
}

before(async () => {
  factory = await buildFactory();
  const init = await cli('ca', 'init', '--repo', factory.repo.dir);
  assert.equal(init.code, 0, init.stderr);
  const a = await certifiedRecipient(factory);
  const b = await certifiedRecipient(factory);
  recipientA = a.device;
  recipientB = b.device;
  keyOfA = recipientA.device.paths.decryptionKeyFile;
  const fleetDir = await tempDir('fleet');
  const fleet = await cli('ca', 'fleet-key', 'fleet-a', '--repo', factory.repo.dir, '--out', fleetDir);
  assert.equal(fleet.code, 0, fleet.stderr);
  fleetDevice = await makeDevice(factory, factory.v1);
  const given = await cli(
    'device',
    'provision',
    '--config',
    fleetDevice.configDir,
    '--fleet-key',
    path.join(fleetDir, 'fleet-a.pem'),
  );
  assert.equal(given.code, 0, given.stderr);
  stranger = (await certifiedRecipient(factory)).device;

  bundle = path.join(await tempDir('stick'), 'update.bundle');
  const exported = await cli(
    'export',
    '--repo',
    factory.repo.dir,
    factory.v2,
    bundle,
    '--tag',
    'main',
    '--encrypt-to',
    a.certificate,
    '--encrypt-to',
    b.certificate,
    '--encrypt-to',
    path.join(fleetDir, 'fleet-a.crt'),
    '--json',
  );
  assert.equal(exported.code, 0, exported.stderr);
  plainTar = path.join(await tempDir('plain'), 'update.tar');
  await exportTo(factory, factory.v2, { destination: plainTar, archive: 'tar' });
});

describe('export --encrypt-to', () => {
  test('writes one tar: the envelope, the plain metadata, then the payload; no plain content in it', async () => {
    const members = await membersOf(bundle);
    assert.equal(members[0], ENVELOPE_MEMBER);
    assert.equal(members.at(-1), PAYLOAD_MEMBER);
    assert.ok(members.includes('tuf/bundle-targets.json'), members.join(' '));
    assert.ok(members.includes('tuf/1.root.json'), members.join(' '));
    assert.ok(
      members.every((name) => !name.startsWith('ostree_repo') && !name.startsWith('apps')),
      `no plain content member: ${members.join(' ')}`,
    );
    // The rootfs's directory objects name its files in the clear in a plain bundle, and nowhere in the encrypted one.
    const marker = Buffer.from('os-release');
    assert.ok((await fs.readFile(plainTar)).includes(marker), 'the plain tar shows the file names');
    assert.ok(!(await fs.readFile(bundle)).includes(marker), 'the encrypted bundle does not');
  });

  test('signs the envelope and the payload: their lengths and SHA-256 are in bundle-targets.json', async () => {
    const signed = await bundleTargetsOf(bundle);
    const encrypted = signed['x-ferry-bundle'].encrypted;
    assert.match(encrypted.payload.sha256, /^[0-9a-f]{64}$/);
    assert.match(encrypted.envelope.sha256, /^[0-9a-f]{64}$/);
    assert.ok(encrypted.payload.length > 0);
  });

  test('show reads the metadata without a key and lists the three recipients', async () => {
    const shown = await cli('show', bundle, '--json');
    assert.equal(shown.code, 0, shown.stderr);
    const summary = JSON.parse(shown.stdout);
    assert.equal(summary.encrypted.recipients.length, 3);
    assert.equal(summary.targets[0].contentPresent, null);
    const text = await cli('show', bundle);
    assert.match(text.stdout, /encrypted \(AES-256-GCM, \d+ bytes of ciphertext\) to 3 recipient/);
    assert.match(text.stdout, /\(content encrypted\)/);
  });

  test('verify checks the ciphertext without a key, and the content too with a recipient key', async () => {
    const sealedOnly = await cli('verify', bundle, '--json');
    assert.equal(sealedOnly.code, 0, sealedOnly.stderr);
    assert.equal(JSON.parse(sealedOnly.stdout).encrypted.contentChecked, false);
    const full = await cli('verify', bundle, '--decryption-key', keyOfA, '--json');
    assert.equal(full.code, 0, full.stderr);
    const verified = JSON.parse(full.stdout);
    assert.equal(verified.encrypted.contentChecked, true);
    assert.ok(verified.blobsChecked >= 0);
  });
});

describe('a device installing an encrypted bundle', () => {
  for (const [label, device] of [
    ['the first recipient', () => recipientA],
    ['the second recipient', () => recipientB],
    ['a device holding the fleet key', () => fleetDevice],
  ] as const) {
    test(`${label}: 100, then run 0 after the reboot; nothing but its reports written to the stick`, async () => {
      // The device's reports go beside the bundle file (reports/); nothing else may.
      const stickBefore = await hashTree(path.dirname(bundle), ['reports']);
      const install = await cli('install', '--config', device().configDir, '--src-dir', bundle);
      assert.equal(install.code, 100, install.stderr);
      assert.equal((await cli('sim', 'reboot', device().dir)).code, 0);
      const run = await cli('run', '--config', device().configDir);
      assert.equal(run.code, 0, run.stderr);
      assert.equal((await statusOf(device())).current.name, factory.v2);
      assert.equal(await hashTree(path.dirname(bundle), ['reports']), stickBefore, 'nothing written to the stick');
      assert.deepEqual((await fs.readdir(path.dirname(bundle))).sort(), ['reports', 'update.bundle']);
    });
  }

  test('a device that is not a recipient: 38, the device unchanged', async () => {
    await assertRefused(stranger, bundle, 38, /^ferry: this device holds no key the bundle is encrypted to/);
  });

  test('a flipped byte of the ciphertext: 39 before anything is decrypted, the device unchanged', async () => {
    const offset = (await contentOffsetOf(bundle, PAYLOAD_MEMBER)) + 1000;
    const tampered = await copyWithFlippedByte(bundle, offset);
    // A device that is not a recipient learns that first: the envelope is opened before the payload is read.
    await assertRefused(stranger, tampered, 38, /^ferry: this device holds no key the bundle is encrypted to/);
    const device = await makeDevice(factory, factory.v1);
    await fs.mkdir(path.dirname(device.device.paths.decryptionKeyFile), { recursive: true });
    await fs.copyFile(keyOfA, device.device.paths.decryptionKeyFile);
    await assertRefused(
      device,
      tampered,
      39,
      /encrypted\/payload: hashes to sha256:[0-9a-f]{64}, the signed .*nothing was decrypted/,
    );
  });

  test('the payload is checked whole before decrypting: nothing but tuf/ is ever in the unpack directory', async () => {
    const offset = (await contentOffsetOf(bundle, PAYLOAD_MEMBER)) + 100;
    const tampered = await copyWithFlippedByte(bundle, offset);
    const staging = await tempDir('unpack');
    const sealed = await openSealedBundle(tampered, staging);
    const signed = await bundleTargetsOf(bundle);
    const { createPrivateKey } = await import('node:crypto');
    await assert.rejects(
      sealed.unseal(signed['x-ferry-bundle'].encrypted, [createPrivateKey(await fs.readFile(keyOfA))]),
      (error: Error & { outcome?: string }) => error.outcome === 'ENCRYPTED_PAYLOAD_MISMATCH',
    );
    assert.deepEqual(await fs.readdir(staging), ['tuf']);
  });

  test('aklite-offline check decrypts as install does: an update (36; 16 from the aklite-offline process) for a recipient, 38 for another device', async () => {
    const device = await makeDevice(factory, factory.v1);
    await fs.mkdir(path.dirname(device.device.paths.decryptionKeyFile), { recursive: true });
    await fs.copyFile(keyOfA, device.device.paths.decryptionKeyFile);
    const before = await device.fingerprint();
    const check = await akliteOffline('check', '--config', device.configDir, '--src-dir', bundle);
    assert.equal(check.code, 36, check.stderr);
    assert.match(check.stdout, new RegExp(factory.v2));
    const refused = await akliteOffline('check', '--config', stranger.configDir, '--src-dir', bundle);
    assert.equal(refused.code, 38, refused.stderr);
    assert.equal(await device.fingerprint(), before, 'check changed the device');
  });

  test('a payload whose bytes match the digest but not the GCM tag: 39 when decrypting ends', async () => {
    // What no stick can do without a targets key: the digest is taken from the changed file itself, so that only the
    // authentication tag is left to catch the change.
    const offset = (await contentOffsetOf(bundle, PAYLOAD_MEMBER)) + 700;
    const tampered = await copyWithFlippedByte(bundle, offset);
    const signed = (await bundleTargetsOf(bundle))['x-ferry-bundle'].encrypted;
    const { createHash, createPrivateKey } = await import('node:crypto');
    const start = await contentOffsetOf(tampered, PAYLOAD_MEMBER);
    const payload = (await fs.readFile(tampered)).subarray(start, start + signed.payload.length);
    const parts = {
      ...signed,
      payload: { length: payload.length, sha256: createHash('sha256').update(payload).digest('hex') },
    };
    const sealed = await openSealedBundle(tampered, await tempDir('unpack'));
    await assert.rejects(
      sealed.unseal(parts, [createPrivateKey(await fs.readFile(keyOfA))]),
      (error: Error & { outcome?: string }) =>
        error.outcome === 'ENCRYPTED_PAYLOAD_MISMATCH' && /authentication tag/.test(error.message),
    );
  });

  test('a flipped byte of the envelope: 39, the device unchanged', async () => {
    const offset = (await contentOffsetOf(bundle, ENVELOPE_MEMBER)) + 40;
    const tampered = await copyWithFlippedByte(bundle, offset);
    const device = await makeDevice(factory, factory.v1);
    await fs.mkdir(path.dirname(device.device.paths.decryptionKeyFile), { recursive: true });
    await fs.copyFile(keyOfA, device.device.paths.decryptionKeyFile);
    await assertRefused(device, tampered, 39, /encrypted\/envelope\.der: \d+ bytes hashing to/);
  });
});

describe('export --encrypt-to refuses, before writing anything', () => {
  test('a certificate of another CA (19), --archive zip (2), --read-back (2): no file, the factory unchanged', async () => {
    const other = await buildFactory();
    assert.equal((await cli('ca', 'init', '--repo', other.repo.dir)).code, 0);
    const foreignDir = await tempDir('foreign');
    assert.equal((await cli('ca', 'fleet-key', 'other', '--repo', other.repo.dir, '--out', foreignDir)).code, 0);
    const before = await hashTree(factory.repo.dir);
    const cases: [string[], number, RegExp][] = [
      [['--encrypt-to', path.join(foreignDir, 'other.crt')], 19, /other\.crt/],
      [['--encrypt-to', path.join(foreignDir, 'other.crt'), '--archive', 'zip'], 2, /zip/],
      [['--encrypt-to', path.join(foreignDir, 'other.crt'), '--read-back'], 2, /--read-back/],
    ];
    for (const [extra, code, reason] of cases) {
      const destination = path.join(await tempDir('refused'), 'update.bundle');
      const result = await cli(
        'export',
        '--repo',
        factory.repo.dir,
        factory.v2,
        destination,
        '--tag',
        'main',
        ...extra,
      );
      assert.equal(result.code, code, `${extra.join(' ')}: ${result.stderr}`);
      assert.equal(result.stderr.trimEnd().split('\n').length, 1, result.stderr);
      assert.match(result.stderr, reason);
      await assert.rejects(fs.stat(destination), `${extra.join(' ')}: no file`);
    }
    assert.equal(await hashTree(factory.repo.dir), before, 'the factory repository is unchanged');
  });

  test('a production bundle that still needs offline countersignatures (2): no file, the factory unchanged', async () => {
    const prod = await buildFactory();
    assert.equal((await cli('ca', 'init', '--repo', prod.repo.dir)).code, 0);
    const offline = await cli(
      'keys',
      'add-offline',
      '--repo',
      prod.repo.dir,
      '--out',
      path.join(await tempDir('offline'), 'keys'),
    );
    assert.equal(offline.code, 0, offline.stderr);
    const fleetDir = await tempDir('fleet');
    assert.equal((await cli('ca', 'fleet-key', 'prod', '--repo', prod.repo.dir, '--out', fleetDir)).code, 0);
    const before = await hashTree(prod.repo.dir);
    const destination = path.join(await tempDir('refused'), 'update.bundle');
    const result = await cli(
      'export',
      '--repo',
      prod.repo.dir,
      prod.v2,
      destination,
      '--tag',
      'main',
      '--prod',
      '--encrypt-to',
      path.join(fleetDir, 'prod.crt'),
    );
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /^ferry: this production bundle needs 1 more offline signature\(s\)/);
    await assert.rejects(fs.stat(destination));
    assert.equal(await hashTree(prod.repo.dir), before, 'the factory repository is unchanged');
  });
});
