import '../../src/tuf/models-patch.js';
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { Metadata, MetadataKind, type Root } from '@tufjs/models';
import { OUTCOMES } from '../../src/exit-codes.js';
import { commitSimRootfs } from '../../src/sim/rootfs.js';
import { openSigner, readSignerSpec } from '../../src/tuf/signers/signer-spec.js';
import { cli } from '../support/cli.js';
import { buildFactory, exportTo, HARDWARE_ID, TAG, tempDir, type TestFactory } from '../support/factory.js';
import { makeDevice } from '../support/sim-device.js';
import { PIN_VARIABLE, SOFTHSM_MODULE, startSoftHsm, TOKEN_PIN, type SoftHsmToken } from '../support/softhsm.js';
import { hashTree } from '../support/tree-hash.js';

/**
 * Signing keys held outside the factory: in a real SoftHSM2 token (PKCS#11, through pkcs11-tool) and behind a signing
 * command. They sign exactly what a PEM key signs: tuf-js and the device take the metadata as they take a file key's,
 * in both TUF formats; the private key is never on disk; a wrong PIN, a missing token or key, a failing command or a
 * bad signature is refused with its code and one line, the factory unchanged.
 */

type Json = Record<string, any>;
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const readJson = async (file: string): Promise<Json> => JSON.parse(await fs.readFile(file, 'utf8'));

/** Every file under `dir`, relative to it. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(dir, path.join(entry.parentPath ?? entry.path, entry.name)));
}

/**
 * Asserts that no private key of `role` lies under the factory: no PEM file, no PRIVATE KEY in any file. A rotation
 * away from a file key keeps that old key in retired/, which `keptRetired` leaves out.
 */
async function assertNoPrivateKeyOnDisk(factoryDir: string, role: string, keptRetired = false): Promise<void> {
  const roleFiles = (await filesUnder(path.join(factoryDir, 'keys', role))).filter(
    (name) => !(keptRetired && name.startsWith(`retired${path.sep}`)),
  );
  assert.deepEqual(
    roleFiles.filter((name) => name.endsWith('.pem')),
    [],
    `no PEM for ${role}`,
  );
  assert.ok(roleFiles.some((name) => name.endsWith('.signer.json')));
  for (const name of roleFiles) {
    assert.doesNotMatch(await fs.readFile(path.join(factoryDir, 'keys', role, name), 'utf8'), /PRIVATE KEY/);
  }
}

/** A signing command: node, reading the bytes on stdin and printing the signature in hex (or a wrong one). */
async function commandSigner(
  mode: 'good' | 'raw' | 'base64' | 'bad' | 'fail',
): Promise<{ file: string; publicPem: string }> {
  const dir = await tempDir('command-signer');
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  // The command's own key, kept where a KMS would keep it: outside the factory.
  const keyFile = path.join(dir, 'kms-key.pem');
  await fs.writeFile(keyFile, privateKey.export({ format: 'pem', type: 'pkcs8' }));
  const script = path.join(dir, 'sign.mjs');
  await fs.writeFile(
    script,
    [
      "import { createPrivateKey, sign } from 'node:crypto';",
      "import { readFileSync } from 'node:fs';",
      'const [keyFile, mode] = process.argv.slice(2);',
      "if (mode === 'fail') { process.stderr.write('kms: access denied\\n'); process.exit(3); }",
      'const data = readFileSync(0);',
      "const message = mode === 'bad' ? Buffer.concat([data, Buffer.from('x')]) : data;",
      'const signature = sign(null, message, createPrivateKey(readFileSync(keyFile)));',
      "if (mode === 'raw') process.stdout.write(signature);",
      "else process.stdout.write(signature.toString(mode === 'base64' ? 'base64' : 'hex') + '\\n');",
    ].join('\n'),
  );
  const publicPem = publicKey.export({ format: 'pem', type: 'spki' }).toString();
  await fs.writeFile(path.join(dir, 'kms.pub.pem'), publicPem);
  const file = path.join(dir, `${mode}.signer.json`);
  await fs.writeFile(
    file,
    JSON.stringify({
      kind: 'command',
      command: [process.execPath, script, keyFile, mode],
      'public-key': 'kms.pub.pem',
    }),
  );
  return { file, publicPem };
}

async function jsonCli(...args: string[]): Promise<{ code: number; stderr: string; data: Json }> {
  const result = await cli(...args, '--json');
  return { code: result.code, stderr: result.stderr, data: JSON.parse(result.stdout) };
}

/** A refusal: the code, the outcome in --json, exactly one line on stderr matching `reason`. */
function assertRefusal(result: { code: number; stderr: string; data: Json }, outcome: string, reason: RegExp): void {
  assert.equal(result.code, OUTCOMES[outcome as keyof typeof OUTCOMES].exitCode, result.stderr);
  assert.equal(result.data['outcome'], outcome);
  const lines = result.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, result.stderr);
  assert.match(lines[0]!, /^ferry: /);
  assert.match(lines[0]!, reason);
}

let token: SoftHsmToken;
let factory: TestFactory;

before(async () => {
  token = await startSoftHsm();
  factory = await buildFactory({ signers: { targets: await readSignerSpec(await token.signerFile('targets')) } });
});

describe('a targets key in a SoftHSM2 token', () => {
  test('the factory exports a bundle a simulated device installs (100, reboot, run 0); no PEM of the key on disk', async () => {
    await assertNoPrivateKeyOnDisk(factory.repo.dir, 'targets');
    // The other roles keep their PEM files.
    assert.equal((await filesUnder(path.join(factory.repo.dir, 'keys', 'root'))).length, 1);
    const device = await makeDevice(factory, factory.v1);
    const bundle = await exportTo(factory, factory.v2);
    const install = await cli('install', '--config', device.configDir, '--src-dir', bundle);
    assert.equal(install.code, 100, install.stderr);
    assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
    const run = await cli('run', '--config', device.configDir);
    assert.equal(run.code, 0, run.stderr);
    await assertNoPrivateKeyOnDisk(factory.repo.dir, 'targets');
  });

  test('tuf-js verifies what the token signed against the root, as a file key signature', async () => {
    const bundle = await exportTo(factory, factory.v2);
    const root = Metadata.fromJSON(
      MetadataKind.Root,
      await readJson(path.join(bundle, 'tuf', '1.root.json')),
    ) as Metadata<Root>;
    const targets = Metadata.fromJSON(MetadataKind.Targets, await readJson(path.join(bundle, 'tuf', 'targets.json')));
    const snapshot = Metadata.fromJSON(
      MetadataKind.Snapshot,
      await readJson(path.join(bundle, 'tuf', 'snapshot.json')),
    );
    const signer = await readJson(
      path.join(
        factory.repo.dir,
        'keys',
        'targets',
        (await fs.readdir(path.join(factory.repo.dir, 'keys', 'targets')))[0]!,
      ),
    );
    assert.equal(signer['kind'], 'pkcs11');
    const tokenKeyId = root.signed.roles['targets']!.keyIDs[0]!;
    assert.deepEqual(Object.keys(targets.signatures), [tokenKeyId]);
    root.verifyDelegate('targets', targets);
    // A file key's signature (snapshot) verifies the same way; a token signature over changed bytes does not.
    root.verifyDelegate('snapshot', snapshot);
    const changedJson = await readJson(path.join(bundle, 'tuf', 'targets.json'));
    changedJson['signed']['version'] += 1;
    const changed = Metadata.fromJSON(MetadataKind.Targets, changedJson);
    assert.throws(() => root.verifyDelegate('targets', changed));
    // The bundle-targets.json the device checks is signed by the token key too, and `verify` takes the whole stick.
    const bundleTargets = await readJson(path.join(bundle, 'tuf', 'bundle-targets.json'));
    assert.deepEqual(
      bundleTargets['signatures'].map((entry: Json) => entry['keyid']),
      [tokenKeyId],
    );
    const verified = await cli('verify', bundle, '--trusted-root', path.join(factory.repo.tufDir, '1.root.json'));
    assert.equal(verified.code, 0, verified.stderr);
  });

  test('the Foundries format: a token-held targets key signs a stick that verifies', async () => {
    const fioctl = await buildFactory({
      metadataFormat: 'fioctl',
      signers: { targets: await readSignerSpec(await token.signerFile('fio-targets')) },
    });
    await assertNoPrivateKeyOnDisk(fioctl.repo.dir, 'targets');
    const bundle = await exportTo(fioctl, fioctl.v2);
    const targets = await readJson(path.join(bundle, 'tuf', 'targets.json'));
    const root = await readJson(path.join(bundle, 'tuf', '1.root.json'));
    assert.deepEqual(
      targets['signatures'].map((entry: Json) => entry['keyid']),
      root['signed']['roles']['targets']['keyids'],
    );
    const verified = await cli('verify', bundle, '--trusted-root', path.join(fioctl.repo.tufDir, '1.root.json'));
    assert.equal(verified.code, 0, verified.stderr);
  });

  test('a wrong PIN is 9, one line, and the factory and the destination are unchanged', async () => {
    const before = await hashTree(factory.repo.dir);
    const destination = path.join(await tempDir('wrong-pin'), 'bundle');
    process.env[PIN_VARIABLE] = '9999';
    try {
      const result = await jsonCli('export', '--repo', factory.repo.dir, factory.v2, destination, '--tag', TAG);
      assertRefusal(result, 'SIGNER_PIN_INCORRECT', /refused the PIN from env:FERRY_TEST_PKCS11_PIN/);
      assert.equal(OUTCOMES.SIGNER_PIN_INCORRECT.exitCode, 9);
      const init = await jsonCli(
        'repo',
        'init',
        path.join(path.dirname(destination), 'repo'),
        '--signer',
        `root=${await token.signerFile('another-root')}`,
      );
      assertRefusal(init, 'SIGNER_PIN_INCORRECT', /refused the PIN/);
      await assert.rejects(fs.access(path.join(path.dirname(destination), 'repo')));
      // target add signs targets too: refused before it copies the commit in.
      await commitSimRootfs({ repo: path.join(factory.dir, 'build'), branch: 'test/v9', version: '9' });
      const added = await jsonCli(
        'target',
        'add',
        '--repo',
        factory.repo.dir,
        '--name',
        'sim-lmp',
        '--version',
        '9',
        '--hardware-id',
        HARDWARE_ID,
        '--tag',
        TAG,
        '--ref',
        'test/v9',
        '--ostree-repo',
        path.join(factory.dir, 'build'),
      );
      assertRefusal(added, 'SIGNER_PIN_INCORRECT', /refused the PIN/);
    } finally {
      process.env[PIN_VARIABLE] = TOKEN_PIN;
    }
    assert.equal(await hashTree(factory.repo.dir), before);
    await assert.rejects(fs.access(destination));
  });

  test('a token, a key or a module that cannot be found is 10; the factory unchanged', async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ token: 'no-such-token' }, /no token labelled "no-such-token"/],
      [{ label: 'no-such-key' }, /holds no key labelled "no-such-key"/],
      [{ module: '/nonexistent/libpkcs11.so' }, /cannot load the PKCS#11 module/],
      [{ 'pin-source': 'env:FERRY_TEST_UNSET_PIN' }, /FERRY_TEST_UNSET_PIN, which is not set/],
    ];
    for (const [overrides, reason] of cases) {
      const repoDir = path.join(await tempDir('signer-missing'), 'repo');
      const init = await jsonCli('repo', 'init', repoDir);
      assert.equal(init.code, 0, init.stderr);
      const targetsDir = path.join(repoDir, 'keys', 'targets');
      const [pem] = await fs.readdir(targetsDir);
      const spec = await readJson(await token.signerFile('targets', overrides));
      // The factory's own targets key, as it names it, now points at what cannot be found.
      await fs.rm(path.join(targetsDir, pem!));
      await fs.writeFile(path.join(targetsDir, `${pem!.replace(/\.pem$/, '')}.signer.json`), JSON.stringify(spec));
      const before = await hashTree(repoDir);
      const rotated = await jsonCli('keys', 'rotate', '--repo', repoDir, '--role', 'targets');
      assertRefusal(rotated, 'SIGNER_FAILED', reason);
      assert.equal(await hashTree(repoDir), before);
    }
    assert.equal(OUTCOMES.SIGNER_FAILED.exitCode, 10);
  });

  test('keys rotate --signer makes the new key in the token; the old one retires; exports still install', async () => {
    const rotating = await buildFactory();
    const result = await jsonCli(
      'keys',
      'rotate',
      '--repo',
      rotating.repo.dir,
      '--role',
      'targets',
      '--signer',
      await token.signerFile('rotated-targets'),
    );
    assert.equal(result.code, 0, result.stderr);
    const live = await fs.readdir(path.join(rotating.repo.dir, 'keys', 'targets'));
    assert.deepEqual(live.sort(), [`${result.data['keyIds'][0]}.signer.json`, 'retired']);
    await assertNoPrivateKeyOnDisk(rotating.repo.dir, 'targets', true);
    const device = await makeDevice(rotating, rotating.v1);
    const bundle = await exportTo(rotating, rotating.v2);
    const install = await cli('install', '--config', device.configDir, '--src-dir', bundle);
    assert.equal(install.code, 100, install.stderr);
  });

  test('keys add-offline --signer and bundle sign --key <signer.json>: an offline key in the token countersigns', async () => {
    const prod = await buildFactory();
    const offlineSigner = await token.signerFile('offline-1');
    const added = await jsonCli('keys', 'add-offline', '--repo', prod.repo.dir, '--signer', offlineSigner);
    assert.equal(added.code, 0, added.stderr);
    assert.deepEqual(added.data['files'], []);
    const bundle = await exportTo(prod, prod.v2, { type: 'prod' });
    const signed = await jsonCli('bundle', 'sign', bundle, '--key', offlineSigner);
    assert.equal(signed.code, 0, signed.stderr);
    assert.deepEqual(signed.data['offline'], { valid: 1, threshold: 1 });
    assert.equal(signed.data['keyId'], added.data['keyIds'][0]);
  });

  test('a PIN read from a file (pin-source file:) opens the token; a message over 1 KiB is signed whole', async () => {
    const pinFile = path.join(await tempDir('pin'), 'pin');
    await fs.writeFile(pinFile, `${TOKEN_PIN}\n`, { mode: 0o600 });
    const spec = await readSignerSpec(await token.signerFile('pin-from-file', { 'pin-source': `file:${pinFile}` }));
    const key = openSigner(spec, { create: true });
    const publicKey = createPublicKey({
      key: Buffer.concat([ED25519_SPKI_PREFIX, Buffer.from(key.publicKey.keyval.public, 'hex')]),
      format: 'der',
      type: 'spki',
    });
    // EdDSA has no multi-part form in the token: a TUF file of any size goes in one C_Sign.
    const data = Buffer.alloc(64 * 1024, 7);
    assert.ok(verify(null, data, publicKey, Buffer.from(key.signHex(data), 'hex')));
  });
});

describe('a signing command', () => {
  test('signs end to end: repo init --signer, export, a device installs it', async () => {
    const { file } = await commandSigner('good');
    const commandFactory = await buildFactory({ signers: { targets: await readSignerSpec(file) } });
    await assertNoPrivateKeyOnDisk(commandFactory.repo.dir, 'targets');
    const device = await makeDevice(commandFactory, commandFactory.v1);
    const bundle = await exportTo(commandFactory, commandFactory.v2);
    const install = await cli('install', '--config', device.configDir, '--src-dir', bundle);
    assert.equal(install.code, 100, install.stderr);
  });

  test('a command that prints a bad signature, or fails, is refused with 10, nothing written', async () => {
    for (const [mode, reason] of [
      ['bad', /does not verify against its public key/],
      ['fail', /exited with 3: kms: access denied/],
    ] as const) {
      const good = await commandSigner('good');
      const commandFactory = await buildFactory({ signers: { targets: await readSignerSpec(good.file) } });
      const broken = await commandSigner(mode);
      const targetsDir = path.join(commandFactory.repo.dir, 'keys', 'targets');
      const [name] = await fs.readdir(targetsDir);
      // The same public key, now behind a command that answers wrongly.
      const spec = await readJson(broken.file);
      await fs.writeFile(path.join(targetsDir, name!), JSON.stringify({ ...spec, 'public-key': good.publicPem }));
      const before = await hashTree(commandFactory.repo.dir);
      const destination = path.join(await tempDir('bad-command'), 'bundle');
      const result = await jsonCli(
        'export',
        '--repo',
        commandFactory.repo.dir,
        commandFactory.v2,
        destination,
        '--tag',
        TAG,
      );
      assertRefusal(result, 'SIGNER_FAILED', reason);
      assert.equal(await hashTree(commandFactory.repo.dir), before);
      // A failed export leaves no half-written bundle: the destination is gone or empty.
      assert.deepEqual(await fs.readdir(destination).catch(() => []), []);
    }
  });

  test('the signature may come raw, in hex or in base64; each is checked against the public key', async () => {
    const data = Buffer.from('{"signed":"bytes"}');
    for (const mode of ['good', 'raw', 'base64'] as const) {
      const { file, publicPem } = await commandSigner(mode);
      const key = openSigner(await readSignerSpec(file));
      assert.ok(verify(null, data, createPublicKey(publicPem), Buffer.from(key.signHex(data), 'hex')), mode);
    }
  });

  test('a signer.json that is not one is 23', async () => {
    const dir = await tempDir('bad-spec');
    const file = path.join(dir, 'signer.json');
    await fs.writeFile(file, JSON.stringify({ kind: 'kms', module: SOFTHSM_MODULE }));
    const result = await jsonCli('repo', 'init', path.join(dir, 'repo'), '--signer', `targets=${file}`);
    assertRefusal(result, 'KEY_FILE_INVALID', /"kind" must be "pkcs11" or "command"/);
    await assert.rejects(fs.access(path.join(dir, 'repo')));
  });
});
