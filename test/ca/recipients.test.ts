import assert from 'node:assert/strict';
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  X509Certificate,
  type KeyObject,
} from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import fc from 'fast-check';
import { checkRecipientCertificates } from '../../src/ca/recipients.js';
import { createCertificateRequest, parseCertificateRequest } from '../../src/ca/ed25519-x509.js';
import { loadDeviceConfig } from '../../src/device/config.js';
import { loadDecryptionKeys } from '../../src/device/decryption-keys.js';
import { devicePaths, type DevicePaths } from '../../src/device/paths.js';
import { FerryError } from '../../src/errors.js';
import { damagedCopies } from '../support/hostile.js';
import { cli } from '../support/cli.js';
import { freshDeviceConfig, tempDir } from '../support/factory.js';
import { openssl } from '../support/openssl.js';
import { hashTree } from '../support/tree-hash.js';

/**
 * The keys and certificates of encrypted bundles: the device's P-256 decryption key and its request (device
 * provision), its key-agreement certificate (device certify), fleet keys (ca fleet-key, device provision
 * --fleet-key), the keys a device holds in the order it tries them, and the recipient certificates export takes.
 */

let repo: string;

before(async () => {
  repo = path.join(await tempDir('recipients'), 'repo');
  assert.equal((await cli('repo', 'init', repo)).code, 0);
  const init = await cli('ca', 'init', '--repo', repo);
  assert.equal(init.code, 0, init.stderr);
});

const spki = (key: KeyObject): Buffer =>
  (key.type === 'public' ? key : createPublicKey(key)).export({ format: 'der', type: 'spki' });

/** A fresh device provisioned under `id`; its storage paths and the provision's JSON. */
async function provisioned(
  id: string,
  ...extra: string[]
): Promise<{ config: string; storage: string; paths: DevicePaths; json: Record<string, unknown> }> {
  const { config, storage } = await freshDeviceConfig();
  const result = await cli('device', 'provision', '--config', config, '--id', id, '--json', ...extra);
  assert.equal(result.code, 0, result.stderr);
  return { config, storage, paths: devicePaths(await loadDeviceConfig([config])), json: JSON.parse(result.stdout) };
}

/** Certifies a request with the CA of `repoDir`; returns the certificate file. */
async function certify(repoDir: string, request: string, ...extra: string[]): Promise<string> {
  const out = path.join(await tempDir('recipient-cert'), 'certificate.crt');
  const result = await cli('device', 'certify', '--repo', repoDir, request, '--out', out, ...extra);
  assert.equal(result.code, 0, result.stderr);
  return out;
}

/** A P-256 private key PEM written to `<dir>/<name>`. */
async function p256KeyFile(dir: string, name: string): Promise<string> {
  const file = path.join(dir, name);
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  await fs.writeFile(file, privateKey.export({ format: 'pem', type: 'pkcs8' }));
  return file;
}

/** The outcome and message of a refusal of checkRecipientCertificates. */
async function refusal(files: string[], now = new Date(), repoDir = repo): Promise<{ outcome: string; line: string }> {
  try {
    await checkRecipientCertificates(repoDir, files, now);
  } catch (error) {
    assert.ok(error instanceof FerryError, String(error));
    assert.ok(!error.message.includes('\n'), 'one line');
    return { outcome: error.outcome, line: error.message };
  }
  assert.fail(`accepted ${files.join(', ')}`);
}

describe("the device's decryption key", () => {
  test('provision makes a P-256 key (0600) and a request for it that OpenSSL verifies (CN = device id, ECDSA with SHA-256)', async () => {
    const { storage, json } = await provisioned('line-9-unit-1');
    const keyFile = path.join(storage, 'ferry', 'decryption-key.pem');
    const requestFile = path.join(storage, 'ferry', 'decryption.csr');
    assert.equal(json['decryptionKeyFile'], keyFile);
    assert.equal(json['decryptionRequestFile'], requestFile);
    assert.equal(json['decryptionKeyCreated'], true);
    assert.equal((await fs.stat(keyFile)).mode & 0o777, 0o600);
    const key = createPrivateKey(await fs.readFile(keyFile));
    assert.equal(key.asymmetricKeyType, 'ec');
    assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.equal(await fs.readFile(requestFile, 'utf8'), json['decryptionRequest']);

    const verified = await openssl('req', '-verify', '-noout', '-in', requestFile);
    assert.equal(verified.code, 0, verified.output);
    assert.match(verified.output, /verify OK/);
    const text = await openssl('req', '-noout', '-text', '-in', requestFile);
    assert.match(text.output, /Subject: CN ?= ?line-9-unit-1\n/);
    assert.match(text.output, /ASN1 OID: prime256v1/);
    assert.match(text.output, /Signature Algorithm: ecdsa-with-SHA256/);
    const publicKey = await openssl('req', '-noout', '-pubkey', '-in', requestFile);
    assert.ok(createPublicKey(publicKey.output).export({ format: 'der', type: 'spki' }).equals(spki(key)));
  });

  test('provision again keeps the key and its request byte for byte; a device provisioned without one gets one, its device key kept', async () => {
    const { config, storage } = await provisioned('line-9-unit-2');
    const before = await hashTree(storage);
    const again = await cli('device', 'provision', '--config', config);
    assert.equal(again.code, 0, again.stderr);
    assert.ok(again.stdout.includes(path.join(storage, 'ferry', 'decryption.csr')), 'the request is named');
    assert.equal(await hashTree(storage), before, 'nothing changed');

    // A device provisioned before decryption keys existed: only its ed25519 key and device.csr.
    const deviceKey = await fs.readFile(path.join(storage, 'ferry', 'device-key.pem'));
    await fs.rm(path.join(storage, 'ferry', 'decryption-key.pem'));
    await fs.rm(path.join(storage, 'ferry', 'decryption.csr'));
    const upgraded = await cli('device', 'provision', '--config', config, '--json');
    assert.equal(upgraded.code, 0, upgraded.stderr);
    const json = JSON.parse(upgraded.stdout);
    assert.equal(json.created, false, 'the device key was there');
    assert.equal(json.decryptionKeyCreated, true);
    assert.ok((await fs.readFile(path.join(storage, 'ferry', 'device-key.pem'))).equals(deviceKey));
    assert.equal((await fs.stat(path.join(storage, 'ferry', 'decryption-key.pem'))).mode & 0o777, 0o600);

    // A key file there that is not a P-256 key is never replaced: refused (57), nothing written.
    await fs.writeFile(
      path.join(storage, 'ferry', 'decryption-key.pem'),
      generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }),
    );
    const broken = await hashTree(storage);
    const refused = await cli('device', 'provision', '--config', config);
    assert.equal(refused.code, 57, refused.stderr);
    assert.match(refused.stderr, /^ferry: .*decryption-key\.pem is not a P-256 private key: [^\n]+\n$/);
    assert.equal(await hashTree(storage), broken);
  });
});

describe('device certify of a decryption request', () => {
  test('gives a certificate OpenSSL chains to the CA, keyUsage keyAgreement (critical) and no digitalSignature; the device certificate stays as it was', async () => {
    const { paths } = await provisioned('line-9-unit-3');
    const issued = await cli('device', 'certify', '--repo', repo, paths.decryptionRequestFile, '--json');
    assert.equal(issued.code, 0, issued.stderr);
    const json = JSON.parse(issued.stdout);
    assert.equal(json.device, 'line-9-unit-3');
    assert.equal(json.keyUsage, 'keyAgreement');
    const certificateFile = path.join(await tempDir('decryption-cert'), 'decryption.crt');
    await fs.writeFile(certificateFile, json.certificate);
    assert.equal(await fs.readFile(path.join(repo, 'ca', 'issued', `${json.serial}.crt`), 'utf8'), json.certificate);

    const caFile = path.join(repo, 'ca', 'ca.crt');
    const chained = await openssl('verify', '-x509_strict', '-CAfile', caFile, certificateFile);
    assert.equal(chained.code, 0, chained.output);
    assert.match(chained.output, /: OK\n/);
    const usage = await openssl(
      'x509',
      '-noout',
      '-subject',
      '-ext',
      'keyUsage,basicConstraints',
      '-in',
      certificateFile,
    );
    assert.equal(usage.code, 0, usage.output);
    assert.match(usage.output, /subject=CN ?= ?line-9-unit-3\n/);
    assert.match(usage.output, /X509v3 Key Usage: critical\n\s+Key Agreement\n/);
    assert.doesNotMatch(usage.output, /Digital Signature/);
    assert.match(usage.output, /critical\n\s+CA:FALSE/);
    const certificate = new X509Certificate(json.certificate);
    assert.ok(spki(certificate.publicKey).equals(spki(createPrivateKey(await fs.readFile(paths.decryptionKeyFile)))));
    // The subject key identifier is the SHA-1 of the key's point (RFC 5280 method 1), as for the ed25519 keys.
    const point = spki(certificate.publicKey).subarray(-65);
    assert.equal(point[0], 0x04, 'an uncompressed point');
    const keyId = (await openssl('x509', '-noout', '-ext', 'subjectKeyIdentifier', '-in', certificateFile)).output;
    assert.equal(
      /Subject Key Identifier: *\n\s*([0-9A-F:]+)/.exec(keyId)?.[1]?.replace(/:/g, '').toLowerCase(),
      createHash('sha1').update(point).digest('hex'),
    );

    const device = await cli('device', 'certify', '--repo', repo, paths.deviceRequestFile, '--json');
    assert.equal(device.code, 0, device.stderr);
    assert.equal(JSON.parse(device.stdout).keyUsage, 'digitalSignature');
    const deviceFile = path.join(path.dirname(certificateFile), 'device.crt');
    await fs.writeFile(deviceFile, JSON.parse(device.stdout).certificate);
    assert.match(
      (await openssl('x509', '-noout', '-ext', 'keyUsage', '-in', deviceFile)).output,
      /critical\n\s+Digital Signature\n/,
    );
  });

  test('a P-256 request its key did not sign, signed with another hash, or for another curve is refused (19), nothing recorded', async () => {
    const dir = await tempDir('bad-requests');
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const der = (pem: string) => Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    const request = der(await createCertificateRequest('line-9-unit-4', privateKey));
    const other = der(
      await createCertificateRequest(
        'line-9-unit-4',
        generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey,
      ),
    );
    const keyAt = request.indexOf(spki(privateKey));
    assert.ok(keyAt > 0);
    const swapped = path.join(dir, 'swapped.csr');
    await fs.writeFile(
      swapped,
      Buffer.concat([request.subarray(0, keyAt), other.subarray(keyAt, keyAt + 91), request.subarray(keyAt + 91)]),
    );
    const keyFile = path.join(dir, 'p256.pem');
    await fs.writeFile(keyFile, privateKey.export({ format: 'pem', type: 'pkcs8' }));
    const sha384 = path.join(dir, 'sha384.csr');
    const made384 = await openssl(
      'req',
      '-new',
      '-key',
      keyFile,
      '-sha384',
      '-subj',
      '/CN=line-9-unit-4',
      '-out',
      sha384,
    );
    assert.equal(made384.code, 0, made384.output);
    const p384Key = path.join(dir, 'p384.pem');
    await fs.writeFile(
      p384Key,
      generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey.export({ format: 'pem', type: 'pkcs8' }),
    );
    const p384 = path.join(dir, 'p384.csr');
    const made = await openssl('req', '-new', '-key', p384Key, '-sha256', '-subj', '/CN=line-9-unit-4', '-out', p384);
    assert.equal(made.code, 0, made.output);

    const before = await hashTree(repo);
    for (const [file, reason] of [
      [swapped, /its signature is not by the key it names/],
      [sha384, /not signed with ECDSA and SHA-256/],
      [p384, /secp384r1\) key, not ed25519 or EC P-256/],
    ] as const) {
      const refused = await cli('device', 'certify', '--repo', repo, file);
      assert.equal(refused.code, 19, `${path.basename(file)}: ${refused.stderr}`);
      assert.match(refused.stderr, /^ferry: the certificate request is refused: [^\n]+\n$/);
      assert.match(refused.stderr, reason);
    }
    assert.equal(await hashTree(repo), before, 'nothing was issued or recorded');
  });
});

describe('P-256 requests changed anywhere (property, a counted number of runs)', () => {
  test('a request is taken only if it is byte for byte the one its key signed; anything else is an Error with a reason', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const request = Buffer.from(
      (await createCertificateRequest('line-9-unit-9', privateKey)).replace(/-----[^-]+-----|\s/g, ''),
      'base64',
    );
    const damaged = damagedCopies(request);
    await fc.assert(
      fc.asyncProperty(damaged, async (bytes) => {
        try {
          await parseCertificateRequest(bytes);
        } catch (error) {
          assert.ok(error instanceof Error && error.message !== '', String(error));
          return;
        }
        assert.ok(bytes.equals(request), 'a changed request was taken');
      }),
      { numRuns: 300, seed: 20 },
    );
  });
});

describe('fleet keys', () => {
  test('ca fleet-key writes a P-256 key (0600) and its certificate (CN=fleet:<name>, keyAgreement) chained to the CA; never over existing files (45)', async () => {
    const out = path.join(await tempDir('fleet-out'), 'keys');
    const made = await cli('ca', 'fleet-key', 'north', '--repo', repo, '--out', out, '--days', '90', '--json');
    assert.equal(made.code, 0, made.stderr);
    const json = JSON.parse(made.stdout);
    const keyFile = path.join(out, 'north.pem');
    const certificateFile = path.join(out, 'north.crt');
    assert.equal(json.keyFile, keyFile);
    assert.equal(json.certificateFile, certificateFile);
    assert.equal((await fs.stat(keyFile)).mode & 0o777, 0o600);
    const key = createPrivateKey(await fs.readFile(keyFile));
    assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    const certificate = new X509Certificate(await fs.readFile(certificateFile));
    assert.ok(spki(certificate.publicKey).equals(spki(key)), 'the certificate is for the key');
    assert.equal(certificate.subject, 'CN=fleet:north');
    assert.equal(Math.round((Date.parse(certificate.validTo) - Date.parse(certificate.validFrom)) / 86_400_000), 90);
    assert.equal(
      await fs.readFile(path.join(repo, 'ca', 'issued', `${certificate.serialNumber}.crt`), 'utf8'),
      certificate.toString(),
    );
    const chained = await openssl(
      'verify',
      '-x509_strict',
      '-CAfile',
      path.join(repo, 'ca', 'ca.crt'),
      certificateFile,
    );
    assert.equal(chained.code, 0, chained.output);
    assert.match(
      (await openssl('x509', '-noout', '-ext', 'keyUsage', '-in', certificateFile)).output,
      /critical\n\s+Key Agreement\n/,
    );

    const repoBefore = await hashTree(repo);
    const outBefore = await hashTree(out);
    const again = await cli('ca', 'fleet-key', 'north', '--repo', repo, '--out', out);
    assert.equal(again.code, 45, again.stderr);
    assert.match(again.stderr, /^ferry: .*north\.pem already exists; a fleet key is never replaced[^\n]*\n$/);
    // Only the certificate there: still refused, and the key is not written beside it.
    const onlyCertificate = path.join(await tempDir('fleet-cert-only'), 'keys');
    await fs.mkdir(onlyCertificate);
    await fs.copyFile(certificateFile, path.join(onlyCertificate, 'north.crt'));
    const certificateThere = await cli('ca', 'fleet-key', 'north', '--repo', repo, '--out', onlyCertificate);
    assert.equal(certificateThere.code, 45, certificateThere.stderr);
    assert.deepEqual(await fs.readdir(onlyCertificate), ['north.crt']);
    const badName = await cli('ca', 'fleet-key', '../north', '--repo', repo, '--out', out);
    assert.equal(badName.code, 2, badName.stderr);
    assert.equal(await hashTree(repo), repoBefore, 'nothing issued or recorded');
    assert.equal(await hashTree(out), outBefore);

    const bare = path.join(await tempDir('fleet-no-ca'), 'repo');
    assert.equal((await cli('repo', 'init', bare)).code, 0);
    const bareBefore = await hashTree(bare);
    const bareOut = path.join(path.dirname(bare), 'keys');
    const noCa = await cli('ca', 'fleet-key', 'north', '--repo', bare, '--out', bareOut);
    assert.equal(noCa.code, 21, noCa.stderr);
    assert.match(noCa.stderr, /has no device CA/);
    assert.equal(await hashTree(bare), bareBefore);
    await assert.rejects(fs.access(bareOut), 'no output directory');
  });

  test('provision --fleet-key keeps P-256 keys by file name (0600); an ed25519 key, another key under a held name or a name that is no plain name is refused, the device unchanged', async () => {
    const keys = await tempDir('fleet-given');
    const north = await p256KeyFile(keys, 'north.pem');
    const east = await p256KeyFile(keys, 'east.pem');
    const { config, storage, paths, json } = await provisioned(
      'line-9-unit-5',
      '--fleet-key',
      north,
      '--fleet-key',
      east,
    );
    assert.deepEqual(json['fleetKeys'], [
      { name: 'north', file: path.join(storage, 'ferry', 'fleet-keys', 'north.pem'), created: true },
      { name: 'east', file: path.join(storage, 'ferry', 'fleet-keys', 'east.pem'), created: true },
    ]);
    for (const [name, source] of [
      ['north', north],
      ['east', east],
    ] as const) {
      const kept = path.join(paths.fleetKeysDir, `${name}.pem`);
      assert.equal((await fs.stat(kept)).mode & 0o777, 0o600);
      assert.ok(
        spki(createPrivateKey(await fs.readFile(kept))).equals(spki(createPrivateKey(await fs.readFile(source)))),
      );
    }

    const before = await hashTree(storage);
    const same = await cli('device', 'provision', '--config', config, '--fleet-key', north, '--json');
    assert.equal(same.code, 0, same.stderr);
    assert.deepEqual(JSON.parse(same.stdout).fleetKeys, [
      { name: 'north', file: path.join(paths.fleetKeysDir, 'north.pem'), created: false },
    ]);
    assert.equal(await hashTree(storage), before, 'the same key again changes nothing');

    const ed25519 = path.join(keys, 'west.pem');
    await fs.writeFile(ed25519, generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }));
    const replaced = await p256KeyFile(await tempDir('fleet-other'), 'north.pem');
    const spaced = await p256KeyFile(keys, 'north west.pem');
    for (const [args, code, reason] of [
      [[ed25519], 57, /--fleet-key .*west\.pem is not a P-256 private key: an ed25519 key/],
      [[east, replaced], 57, /holds another fleet key named "north"/],
      [[spaced], 2, /"north west" is not a plain name/],
      [[east, east], 2, /named "east" is given twice/],
      [[path.join(keys, 'missing.pem')], 57, /missing\.pem is not a P-256 private key/],
    ] as const) {
      const refused = await cli(
        'device',
        'provision',
        '--config',
        config,
        ...args.flatMap((file) => ['--fleet-key', file]),
      );
      assert.equal(refused.code, code, refused.stderr);
      assert.equal(refused.stderr.trimEnd().split('\n').length, 1);
      assert.match(refused.stderr, reason);
      assert.equal(await hashTree(storage), before, `the device is unchanged: ${refused.stderr}`);
    }

    // On a device never provisioned, the refusal comes before its first key.
    const fresh = await freshDeviceConfig();
    const first = await cli('device', 'provision', '--config', fresh.config, '--fleet-key', ed25519);
    assert.equal(first.code, 57, first.stderr);
    await assert.rejects(fs.access(fresh.storage), 'nothing written');
  });
});

describe('the keys a device holds', () => {
  test("loadDecryptionKeys: the device's own key first, then the fleet keys by name; a bad file is skipped and listed, never thrown", async () => {
    const empty = devicePaths(await loadDeviceConfig([(await freshDeviceConfig()).config]));
    const none = await loadDecryptionKeys(empty);
    assert.deepEqual([...none], []);
    assert.deepEqual(none.skipped, []);

    const keys = await tempDir('fleet-order');
    const zulu = await p256KeyFile(keys, 'zulu.pem');
    const alpha = await p256KeyFile(keys, 'alpha.pem');
    const { paths } = await provisioned('line-9-unit-6', '--fleet-key', zulu, '--fleet-key', alpha);
    const held = await loadDecryptionKeys(paths);
    assert.deepEqual(
      held.map((entry) => entry.name),
      ['device', 'alpha', 'zulu'],
    );
    const expected = [paths.decryptionKeyFile, alpha, zulu];
    for (const [index, entry] of held.entries())
      assert.ok(spki(entry.key).equals(spki(createPrivateKey(await fs.readFile(expected[index]!)))), entry.name);
    assert.equal(held[0]!.key.type, 'private');
    assert.deepEqual(held.skipped, []);

    // One damaged fleet key, one of another type and a stray file: the others still come, in order.
    await fs.writeFile(path.join(paths.fleetKeysDir, 'bravo.pem'), 'not a key\n');
    await fs.writeFile(
      path.join(paths.fleetKeysDir, 'charlie.pem'),
      generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }),
    );
    await fs.writeFile(path.join(paths.fleetKeysDir, 'notes.txt'), 'not a key either\n');
    const some = await loadDecryptionKeys(paths);
    assert.deepEqual(
      some.map((entry) => entry.name),
      ['device', 'alpha', 'zulu'],
    );
    assert.deepEqual(
      some.skipped.map((entry) => [entry.name, entry.file]),
      [
        ['bravo', path.join(paths.fleetKeysDir, 'bravo.pem')],
        ['charlie', path.join(paths.fleetKeysDir, 'charlie.pem')],
      ],
    );
    assert.match(some.skipped[1]!.reason, /not a P-256 private key: an ed25519 key/);

    // Without its own key, the fleet keys alone.
    await fs.rm(paths.decryptionKeyFile);
    assert.deepEqual(
      (await loadDecryptionKeys(paths)).map((entry) => entry.name),
      ['alpha', 'zulu'],
    );
  });
});

describe('recipient certificates (checkRecipientCertificates)', () => {
  let device: Awaited<ReturnType<typeof provisioned>>;
  let decryptionCertificate: string;
  let deviceCertificate: string;
  let fleetCertificate: string;
  before(async () => {
    device = await provisioned('line-9-unit-7');
    decryptionCertificate = await certify(repo, device.paths.decryptionRequestFile);
    deviceCertificate = await certify(repo, device.paths.deviceRequestFile);
    const out = path.join(await tempDir('recipient-fleet'), 'keys');
    const made = await cli('ca', 'fleet-key', 'south', '--repo', repo, '--out', out);
    assert.equal(made.code, 0, made.stderr);
    fleetCertificate = path.join(out, 'south.crt');
  });

  test("accepts a device's decryption certificate and a fleet certificate; of a file with both of a device's certificates, the P-256 one; each once", async () => {
    const both = path.join(await tempDir('both-certificates'), 'line-9-unit-7.crt');
    await fs.writeFile(
      both,
      `${await fs.readFile(deviceCertificate, 'utf8')}${await fs.readFile(decryptionCertificate, 'utf8')}`,
    );
    const accepted = await checkRecipientCertificates(
      repo,
      [decryptionCertificate, fleetCertificate, both, decryptionCertificate],
      new Date(),
    );
    assert.deepEqual(
      accepted.map((certificate) => certificate.subject),
      ['CN=line-9-unit-7', 'CN=fleet:south'],
    );
    assert.ok(
      accepted[0]!.publicKey.equals(
        createPublicKey(createPrivateKey(await fs.readFile(device.paths.decryptionKeyFile))),
      ),
    );
    assert.deepEqual(await checkRecipientCertificates(repo, [], new Date()), []);
  });

  test("refuses another CA's certificate, an expired one, a revoked one, an ed25519 device certificate, one without keyAgreement, and a repository without a CA", async () => {
    const otherRepo = path.join(await tempDir('other-ca'), 'repo');
    assert.equal((await cli('repo', 'init', otherRepo)).code, 0);
    assert.equal((await cli('ca', 'init', '--repo', otherRepo)).code, 0);
    const otherCa = await certify(otherRepo, device.paths.decryptionRequestFile);
    const shortLived = await certify(repo, device.paths.decryptionRequestFile, '--days', '1');
    const notCertificate = path.join(await tempDir('not-certificate'), 'notes.crt');
    await fs.writeFile(notCertificate, 'not a certificate\n');
    // Issued by this CA's key (OpenSSL signs with ed25519 too), for the device's P-256 key, but for signing only.
    const signingOnly = path.join(path.dirname(notCertificate), 'signing-only.crt');
    const extensions = path.join(path.dirname(notCertificate), 'ext.cnf');
    await fs.writeFile(extensions, 'keyUsage = critical, digitalSignature\n');
    const signed = await openssl(
      ...['x509', '-req', '-in', device.paths.decryptionRequestFile, '-days', '30', '-set_serial', '0x4A01'],
      ...['-CA', path.join(repo, 'ca', 'ca.crt'), '-CAkey', path.join(repo, 'ca', 'ca-key.pem')],
      ...['-extfile', extensions, '-out', signingOnly],
    );
    assert.equal(signed.code, 0, signed.output);
    // The same without any keyUsage: nothing forbids key agreement, so it is taken.
    const noUsage = path.join(path.dirname(notCertificate), 'no-usage.crt');
    const plain = await openssl(
      ...['x509', '-req', '-in', device.paths.decryptionRequestFile, '-days', '30', '-set_serial', '0x4A02'],
      ...['-CA', path.join(repo, 'ca', 'ca.crt'), '-CAkey', path.join(repo, 'ca', 'ca-key.pem'), '-out', noUsage],
    );
    assert.equal(plain.code, 0, plain.output);
    assert.equal((await checkRecipientCertificates(repo, [noUsage], new Date())).length, 1);

    const later = new Date(Date.now() + 2 * 86_400_000);
    assert.equal((await checkRecipientCertificates(repo, [shortLived], new Date())).length, 1, 'valid now');
    for (const [files, now, file, reason] of [
      [
        [fleetCertificate, otherCa],
        new Date(),
        otherCa,
        /the certificate of "line-9-unit-7" is not issued by the device CA of /,
      ],
      [[shortLived], later, shortLived, /is not valid at /],
      [
        [deviceCertificate],
        new Date(),
        deviceCertificate,
        /no certificate in it holds an EC P-256 key \("line-9-unit-7": ed25519\)/,
      ],
      [[signingOnly], new Date(), signingOnly, /does not allow key agreement \(its key usage: digitalSignature\)/],
      [[notCertificate], new Date(), notCertificate, /not an X\.509 certificate/],
      [[path.join(path.dirname(notCertificate), 'missing.crt')], new Date(), 'missing.crt', /cannot be read/],
    ] as const) {
      const refused = await refusal([...files], now);
      assert.equal(refused.outcome, 'DEVICE_CERTIFICATE_INVALID', refused.line);
      assert.ok(refused.line.includes(file), `the line names ${file}: ${refused.line}`);
      assert.match(refused.line, reason);
    }

    const bare = path.join(await tempDir('recipients-no-ca'), 'repo');
    assert.equal((await cli('repo', 'init', bare)).code, 0);
    const noCa = await refusal([decryptionCertificate], new Date(), bare);
    assert.equal(noCa.outcome, 'DEVICE_CA_UNAVAILABLE');
    assert.match(noCa.line, /has no device CA .* to check .*certificate\.crt by: ferry ca init makes one/);
  });

  test('device revoke of the id revokes both of its certificates, and fleet:<name> a fleet certificate: neither is taken after', async () => {
    const revoked = await provisioned('line-9-unit-8');
    const decryption = await certify(repo, revoked.paths.decryptionRequestFile);
    const deviceCert = await certify(repo, revoked.paths.deviceRequestFile);
    const out = path.join(await tempDir('revoked-fleet'), 'keys');
    assert.equal((await cli('ca', 'fleet-key', 'west', '--repo', repo, '--out', out)).code, 0);
    const fleet = path.join(out, 'west.crt');
    assert.equal((await checkRecipientCertificates(repo, [decryption, fleet], new Date())).length, 2);

    const byId = await cli('device', 'revoke', '--repo', repo, 'line-9-unit-8', '--json');
    assert.equal(byId.code, 0, byId.stderr);
    const serials = (JSON.parse(byId.stdout).revoked as { serial: string }[]).map((entry) => entry.serial).sort();
    assert.deepEqual(
      serials,
      [
        new X509Certificate(await fs.readFile(decryption)).serialNumber,
        new X509Certificate(await fs.readFile(deviceCert)).serialNumber,
      ].sort(),
    );
    const refused = await refusal([decryption]);
    assert.equal(refused.outcome, 'DEVICE_CERTIFICATE_INVALID');
    assert.match(refused.line, /the certificate of "line-9-unit-8" \(serial [0-9A-F]+\) is revoked/);

    const byName = await cli('device', 'revoke', '--repo', repo, 'fleet:west');
    assert.equal(byName.code, 0, byName.stderr);
    assert.match((await refusal([fleet])).line, /"fleet:west" \(serial [0-9A-F]+\) is revoked/);
    assert.equal(
      (await checkRecipientCertificates(repo, [decryptionCertificate], new Date())).length,
      1,
      'others stay',
    );
  });
});
