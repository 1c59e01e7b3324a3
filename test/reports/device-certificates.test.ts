import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import fc from 'fast-check';
import {
  createCertificateRequest,
  issueCertificate,
  newSerial,
  parseCertificateRequest,
} from '../../src/ca/ed25519-x509.js';
import { signReport, verifyReport, type ReportEnvelope } from '../../src/reports/signed-report.js';
import { signingKeyFromPem } from '../../src/tuf/keys.js';
import { cli, ferryProcessAt } from '../support/cli.js';
import {
  buildFactory,
  exportTo,
  freshDeviceConfig as freshConfig,
  tempDir,
  type TestFactory,
} from '../support/factory.js';
import { openssl } from '../support/openssl.js';
import { makeDevice, type TestDevice } from '../support/sim-device.js';
import { damagedCopies } from '../support/hostile.js';
import { hashTree } from '../support/tree-hash.js';

/**
 * Devices known by certificate: the factory's device CA (ca init), the device's request (device provision), the
 * station's certificate (device certify), the device keeping it (provision --certificate), reports carrying it, and
 * `ferry reports` trusting them by the CA, not by a registered key, unless the certificate is from another CA,
 * outside its validity, revoked, or not the key that signed.
 */

let factory: TestFactory;

before(async () => {
  factory = await buildFactory();
  // Made in 2019, valid for 20 years: a certificate issued in 2020 (with the clock set back) is one of its own.
  const init = await ferryProcessAt('2019-01-01 00:00:00', ['ca', 'init', '--repo', factory.repo.dir, '--json']);
  assert.equal(init.code, 0, init.stderr);
  assert.equal(JSON.parse(init.stdout).created, true);
});

const deviceIdOf = async (device: TestDevice): Promise<string> =>
  (await fs.readFile(device.device.paths.deviceIdFile, 'utf8')).trim();

/** Certifies a device's request with the CA of `repo`; returns the certificate file. */
async function certify(repo: string, request: string, ...extra: string[]): Promise<string> {
  const out = path.join(await tempDir('cert'), 'device.crt');
  const result = await cli('device', 'certify', '--repo', repo, request, '--out', out, ...extra);
  assert.equal(result.code, 0, result.stderr);
  return out;
}

/**
 * A simulated device whose workstation knows it only by certificate: its registration (sim create makes one) is
 * removed, and it keeps the certificate the factory CA issued for its request.
 */
async function certifiedDevice(): Promise<{ device: TestDevice; id: string; certificate: string }> {
  const device = await makeDevice(factory, factory.v1);
  const id = await deviceIdOf(device);
  await fs.rm(path.join(factory.repo.dir, 'devices', `${id}.pub`));
  const provision = await cli('device', 'provision', '--config', device.configDir, '--json');
  assert.equal(provision.code, 0, provision.stderr);
  const certificate = await certify(factory.repo.dir, device.device.paths.deviceRequestFile);
  const keep = await cli('device', 'provision', '--config', device.configDir, '--certificate', certificate);
  assert.equal(keep.code, 0, keep.stderr);
  return { device, id, certificate };
}

const rowsOf = (stdout: string): Record<string, unknown>[] => JSON.parse(stdout).rows;
const reasonOf = (rows: Record<string, unknown>[], file: string): string => {
  const row = rows.find((candidate) => path.basename(String(candidate['file'])) === file);
  assert.ok(row, `no row for ${file}`);
  return row['valid'] === true ? 'valid' : String(row['reason']);
};

describe('certificate requests and certificates for ed25519 keys (pure)', () => {
  test('a request names the device and proves its key; a changed byte, another key or a foreign name is refused', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const pem = await createCertificateRequest('line-7-unit-1', privateKey);
    const parsed = await parseCertificateRequest(Buffer.from(pem));
    assert.equal(parsed.commonName, 'line-7-unit-1');
    assert.ok(
      parsed.publicKey
        .export({ format: 'der', type: 'spki' })
        .equals(publicKey.export({ format: 'der', type: 'spki' })),
    );
    assert.equal(
      await createCertificateRequest('line-7-unit-1', privateKey),
      pem,
      'the same key and id: the same bytes',
    );

    const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    const flipped = Buffer.from(der);
    flipped[flipped.length - 1] ^= 1;
    await assert.rejects(parseCertificateRequest(flipped), /signature is not by the key/);
    // The key of another request put in this one: its signature no longer verifies.
    const other = Buffer.from(
      (await createCertificateRequest('line-7-unit-1', generateKeyPairSync('ed25519').privateKey)).replace(
        /-----[^-]+-----|\s/g,
        '',
      ),
      'base64',
    );
    const keyAt = der.indexOf(publicKey.export({ format: 'der', type: 'spki' }));
    assert.ok(keyAt > 0);
    const swapped = Buffer.concat([
      der.subarray(0, keyAt),
      other.subarray(keyAt, keyAt + 44),
      der.subarray(keyAt + 44),
    ]);
    await assert.rejects(parseCertificateRequest(swapped), /signature is not by the key/);
    // Outside the signed part: the signature's count of unused bits, and bytes after the request. A reader that
    // decodes leniently would take both with a signature that verifies.
    const unusedBits = Buffer.from(der);
    assert.equal(unusedBits[unusedBits.length - 65], 0);
    unusedBits[unusedBits.length - 65] = 3;
    await assert.rejects(parseCertificateRequest(unusedBits), /not in the distinguished encoding/);
    await assert.rejects(
      parseCertificateRequest(Buffer.concat([der, Buffer.from([0])])),
      /not in the distinguished encoding/,
    );
    await assert.rejects(parseCertificateRequest(Buffer.from('not a request')), /not a DER certificate request/);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
    await assert.rejects(createCertificateRequest('x', rsa), /not ed25519/);
  });
});

describe('requests and certificates changed anywhere (property, a counted number of runs)', () => {
  const { privateKey } = generateKeyPairSync('ed25519');
  let request: Buffer;
  before(async () => {
    request = Buffer.from(
      (await createCertificateRequest('line-7-unit-1', privateKey)).replace(/-----[^-]+-----|\s/g, ''),
      'base64',
    );
  });

  test('a request is taken only if it is byte for byte the one its key signed; anything else is an Error with a reason', async () => {
    await fc.assert(
      fc.asyncProperty(damagedCopies(request), async (bytes) => {
        try {
          await parseCertificateRequest(bytes);
        } catch (error) {
          assert.ok(error instanceof Error && error.message !== '', String(error));
          return;
        }
        assert.ok(bytes.equals(request), 'a changed request was taken');
      }),
      { numRuns: 500, seed: 20 },
    );
  });

  test("a report's certificate changed anywhere is rejected with a reason, never an exception", async () => {
    const ca = generateKeyPairSync('ed25519');
    const now = new Date();
    const caPem = await issueCertificate({
      serial: newSerial(),
      subject: 'test device CA',
      publicKey: ca.publicKey,
      notBefore: new Date(now.getTime() - 86_400_000),
      notAfter: new Date(now.getTime() + 86_400_000),
      ca: true,
      signingKey: ca.privateKey,
    });
    const caCertificate = new X509Certificate(caPem);
    const devicePem = await issueCertificate({
      serial: newSerial(),
      subject: 'line-7-unit-1',
      publicKey: createPublicKey(privateKey),
      notBefore: new Date(now.getTime() - 3_600_000),
      notAfter: new Date(now.getTime() + 3_600_000),
      ca: false,
      issuer: { certificate: caCertificate, commonName: 'test device CA' },
      signingKey: ca.privateKey,
    });
    const certificateDer = new X509Certificate(devicePem).raw;
    const report = {
      _type: 'ferry-report' as const,
      version: 1 as const,
      device: 'line-7-unit-1',
      step: 'run' as const,
      target: null,
      current: null,
      exitCode: 0,
      outcome: 'OK',
      state: null,
      error: null,
      at: now.toISOString(),
    };
    const key = signingKeyFromPem(privateKey.export({ format: 'pem', type: 'pkcs8' }).toString());
    const check = { ca: { certificate: caCertificate, revokedSerials: new Set<string>() }, now };
    const verdictOf = (der: Buffer) => {
      const pem = `-----BEGIN CERTIFICATE-----\n${der.toString('base64')}\n-----END CERTIFICATE-----\n`;
      return verifyReport(signReport(report, key, pem), 'line-7-unit-1', () => undefined, check);
    };
    assert.equal(verdictOf(certificateDer).valid, true, 'the certificate as issued is trusted');
    fc.assert(
      fc.property(damagedCopies(certificateDer), (der) => {
        const verdict = verdictOf(der);
        if (der.equals(certificateDer)) return;
        assert.equal(verdict.valid, false, 'a changed certificate was trusted');
        assert.ok(!verdict.valid && verdict.reason !== '');
      }),
      { numRuns: 300, seed: 20 },
    );
  });
});

describe('the factory device CA and the station', () => {
  test('ca init makes the CA once (key 0600); certify issues a certificate that chains to it; refusals change nothing', async () => {
    const repo = factory.repo.dir;
    const caCertificate = new X509Certificate(await fs.readFile(path.join(repo, 'ca', 'ca.crt')));
    assert.ok(caCertificate.ca);
    assert.ok(caCertificate.verify(caCertificate.publicKey), 'self-signed');
    assert.equal(caCertificate.publicKey.asymmetricKeyType, 'ed25519');
    assert.equal((await fs.stat(path.join(repo, 'ca', 'ca-key.pem'))).mode & 0o777, 0o600);
    const caBefore = await hashTree(path.join(repo, 'ca'));
    const again = await cli('ca', 'init', '--repo', repo, '--json');
    assert.equal(again.code, 0, again.stderr);
    assert.equal(JSON.parse(again.stdout).created, false);
    assert.equal(await hashTree(path.join(repo, 'ca')), caBefore, 'an existing CA is kept as it is');

    const { config, storage } = await freshConfig();
    const provisioned = await cli('device', 'provision', '--config', config, '--id', 'line-7-unit-9', '--json');
    assert.equal(provisioned.code, 0, provisioned.stderr);
    const requestFile = path.join(storage, 'ferry', 'device.csr');
    assert.equal(JSON.parse(provisioned.stdout).requestFile, requestFile);
    assert.equal((await parseCertificateRequest(await fs.readFile(requestFile))).commonName, 'line-7-unit-9');

    const printed = await cli('device', 'certify', '--repo', repo, requestFile, '--days', '30', '--json');
    assert.equal(printed.code, 0, printed.stderr);
    const issued = JSON.parse(printed.stdout);
    const certificate = new X509Certificate(issued.certificate);
    assert.ok(certificate.checkIssued(caCertificate) && certificate.verify(caCertificate.publicKey));
    assert.equal(certificate.subject, 'CN=line-7-unit-9');
    assert.equal(certificate.ca, false);
    assert.equal(certificate.serialNumber, issued.serial);
    const days = (Date.parse(certificate.validTo) - Date.parse(certificate.validFrom)) / 86_400_000;
    assert.equal(Math.round(days), 30);
    const deviceKey = createPublicKey(
      createPrivateKey(await fs.readFile(path.join(storage, 'ferry', 'device-key.pem'))),
    );
    assert.ok(
      certificate.publicKey
        .export({ format: 'der', type: 'spki' })
        .equals(deviceKey.export({ format: 'der', type: 'spki' })),
      "the certificate is for the device's key",
    );
    assert.equal(
      await fs.readFile(path.join(repo, 'ca', 'issued', `${issued.serial}.crt`), 'utf8'),
      issued.certificate,
    );
    const text = await cli('device', 'certify', '--repo', repo, requestFile);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^-----BEGIN CERTIFICATE-----\n[\s\S]+\n-----END CERTIFICATE-----\n$/);

    // Refusals: a request that is not one (19), a CA key that is not the CA's (19), a repository without a CA (21).
    const repoBefore = await hashTree(repo);
    const notRequest = await cli('device', 'certify', '--repo', repo, config);
    assert.equal(notRequest.code, 19, notRequest.stderr);
    assert.match(notRequest.stderr, /^ferry: the certificate request is refused: [^\n]+\n$/);
    const otherKey = path.join(path.dirname(config), 'other-ca-key.pem');
    await fs.writeFile(
      otherKey,
      generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    );
    const wrongKey = await cli('device', 'certify', '--repo', repo, requestFile, '--ca-key', otherKey);
    assert.equal(wrongKey.code, 19, wrongKey.stderr);
    assert.match(wrongKey.stderr, /is not the key of the device CA certificate/);
    assert.equal(await hashTree(repo), repoBefore, 'nothing was issued or recorded');
    const bare = path.join(await tempDir('no-ca'), 'repo');
    assert.equal((await cli('repo', 'init', bare)).code, 0);
    const bareBefore = await hashTree(bare);
    const noCa = await cli('device', 'certify', '--repo', bare, requestFile);
    assert.equal(noCa.code, 21, noCa.stderr);
    assert.match(noCa.stderr, /^ferry: .* has no device CA .*ferry ca init makes one\n$/);
    const noRevoke = await cli('device', 'revoke', '--repo', bare, 'line-7-unit-9');
    assert.equal(noRevoke.code, 21, noRevoke.stderr);
    assert.equal(await hashTree(bare), bareBefore);
    // A CA whose certificate has ended issues nothing.
    const pastCa = await ferryProcessAt('2020-01-01 00:00:00', ['ca', 'init', '--repo', bare, '--days', '1']);
    assert.equal(pastCa.code, 0, pastCa.stderr);
    const endedBefore = await hashTree(bare);
    const ended = await cli('device', 'certify', '--repo', bare, requestFile);
    assert.equal(ended.code, 21, ended.stderr);
    assert.match(ended.stderr, /^ferry: the device CA certificate .* is not valid now/);
    assert.equal(await hashTree(bare), endedBefore);
  });

  test('OpenSSL reads what ferry writes: the request verifies, and the device certificate chains to the CA (strict)', async () => {
    const { config, storage } = await freshConfig();
    const provisioned = await cli('device', 'provision', '--config', config, '--id', 'line-7-unit-11');
    assert.equal(provisioned.code, 0, provisioned.stderr);
    const requestFile = path.join(storage, 'ferry', 'device.csr');
    const request = await openssl('req', '-verify', '-noout', '-in', requestFile);
    assert.equal(request.code, 0, request.output);
    assert.match(request.output, /verify OK/);
    const certificate = await certify(factory.repo.dir, requestFile);
    const caFile = path.join(factory.repo.dir, 'ca', 'ca.crt');
    const chained = await openssl('verify', '-x509_strict', '-CAfile', caFile, certificate);
    assert.equal(chained.code, 0, chained.output);
    assert.match(chained.output, /: OK\n/);
    const text = await openssl('x509', '-noout', '-subject', '-ext', 'basicConstraints,keyUsage', '-in', certificate);
    assert.equal(text.code, 0, text.output);
    assert.match(text.output, /subject=CN ?= ?line-7-unit-11\n/);
    assert.match(text.output, /critical\n\s+CA:FALSE/);
    assert.match(text.output, /critical\n\s+Digital Signature\n/);
    // A device certificate is no CA: nothing chains to it, itself included.
    const selfChained = await openssl('verify', '-CAfile', certificate, certificate);
    assert.notEqual(selfChained.code, 0, selfChained.output);
  });

  test('the device keeps only a certificate for its own key and id (19 otherwise, its storage unchanged)', async () => {
    const { config, storage } = await freshConfig();
    const unprovisioned = await freshConfig();
    const mine = await cli('device', 'provision', '--config', config, '--id', 'line-7-unit-10');
    assert.equal(mine.code, 0, mine.stderr);
    const { privateKey } = generateKeyPairSync('ed25519');
    const foreignRequest = path.join(path.dirname(config), 'foreign.csr');
    await fs.writeFile(foreignRequest, await createCertificateRequest('line-7-unit-10', privateKey));
    const foreign = await certify(factory.repo.dir, foreignRequest);
    const before = await hashTree(storage);
    const refused = await cli('device', 'provision', '--config', config, '--certificate', foreign);
    assert.equal(refused.code, 19, refused.stderr);
    assert.match(refused.stderr, /^ferry: .* certifies another key, not this device's key\n$/);
    assert.equal(await hashTree(storage), before);

    const none = await cli('device', 'provision', '--config', unprovisioned.config, '--certificate', foreign);
    assert.equal(none.code, 19, none.stderr);
    assert.match(none.stderr, /has no key/);
    await assert.rejects(fs.access(unprovisioned.storage), 'nothing was written on the unprovisioned device');

    const own = await certify(factory.repo.dir, path.join(storage, 'ferry', 'device.csr'));
    const kept = await cli('device', 'provision', '--config', config, '--certificate', own, '--json');
    assert.equal(kept.code, 0, kept.stderr);
    assert.equal(
      await fs.readFile(path.join(storage, 'ferry', 'device.crt'), 'utf8'),
      new X509Certificate(await fs.readFile(own)).toString(),
    );
  });
});

describe('reports trusted by certificate', () => {
  test('a certified device needs no registration; another CA, an expired or revoked certificate and a forged report are rejected (53)', async () => {
    const { device, id, certificate } = await certifiedDevice();
    const bundle = await exportTo(factory, factory.v2);
    const install = await cli('install', '--config', device.configDir, '--src-dir', bundle, '--json');
    assert.equal(install.code, 100, install.stderr);
    const genuineFile = JSON.parse(install.stdout).report as string;
    const genuine = JSON.parse(await fs.readFile(genuineFile, 'utf8')) as ReportEnvelope;
    assert.equal(genuine.certificate, await fs.readFile(device.device.paths.deviceCertificateFile, 'utf8'));
    assert.equal(genuine.certificate, new X509Certificate(await fs.readFile(certificate)).toString());
    await assert.rejects(
      fs.access(path.join(factory.repo.dir, 'devices', `${id}.pub`)),
      'the device is not registered',
    );

    const accepted = await cli('reports', bundle, '--repo', factory.repo.dir, '--json');
    assert.equal(accepted.code, 0, accepted.stderr);
    assert.deepEqual(
      rowsOf(accepted.stdout).map((row) => [row['device'], row['valid'], row['step'], row['exitCode']]),
      [[id, true, 'install', 100]],
    );

    const deviceDir = path.dirname(genuineFile);
    const write = async (name: string, envelope: unknown) =>
      fs.writeFile(path.join(deviceDir, name), typeof envelope === 'string' ? envelope : JSON.stringify(envelope));
    const deviceKey = signingKeyFromPem(await fs.readFile(device.device.paths.deviceKeyFile, 'utf8'));
    /** A report the device's own key signs, carrying `certificatePem`: only the certificate is on trial. */
    const signedWith = (certificatePem: string, change: Partial<ReportEnvelope['signed']> = {}) =>
      signReport({ ...genuine.signed, ...change }, deviceKey, certificatePem).toString();

    // Another CA: a factory of its own certifies the same device key and id.
    const otherRepo = path.join(await tempDir('other-factory'), 'repo');
    assert.equal((await cli('repo', 'init', otherRepo)).code, 0);
    assert.equal((await cli('ca', 'init', '--repo', otherRepo)).code, 0);
    const otherCa = await fs.readFile(await certify(otherRepo, device.device.paths.deviceRequestFile), 'utf8');
    await write('other-ca.json', signedWith(otherCa));

    // Expired: issued by this factory's CA, at a clock set back to 2020, for 30 days.
    const expiredFile = path.join(await tempDir('expired'), 'device.crt');
    const old = await ferryProcessAt('2020-01-01 00:00:00', [
      'device',
      'certify',
      '--repo',
      factory.repo.dir,
      device.device.paths.deviceRequestFile,
      '--days',
      '30',
      '--out',
      expiredFile,
    ]);
    assert.equal(old.code, 0, old.stderr);
    const expired = await fs.readFile(expiredFile, 'utf8');
    assert.equal(new Date(new X509Certificate(expired).validTo).getUTCFullYear(), 2020);
    await write('expired.json', signedWith(expired, { at: '2020-01-15T00:00:00.000Z' }));
    // Valid now, but the report claims a time before the certificate existed.
    await write('before-validity.json', signedWith(genuine.certificate!, { at: '2020-01-15T00:00:00.000Z' }));

    // Forged: the valid certificate with a signature by another key, or with a changed outcome.
    const { privateKey } = generateKeyPairSync('ed25519');
    const forger = signingKeyFromPem(privateKey.export({ format: 'pem', type: 'pkcs8' }).toString());
    await write('other-key.json', signReport(genuine.signed, forger, genuine.certificate!).toString());
    await write('changed.json', { ...genuine, signed: { ...genuine.signed, exitCode: 0 } });
    // A certificate of this CA for the device's key under another name: the report's device must be its subject.
    const renamedRequest = path.join(await tempDir('renamed'), 'renamed.csr');
    await fs.writeFile(
      renamedRequest,
      await createCertificateRequest(
        'someone-else',
        createPrivateKey(await fs.readFile(device.device.paths.deviceKeyFile)),
      ),
    );
    await write(
      'not-its-name.json',
      signedWith(await fs.readFile(await certify(factory.repo.dir, renamedRequest), 'utf8')),
    );

    const verdicts = await cli('reports', bundle, '--repo', factory.repo.dir, '--json');
    assert.equal(verdicts.code, 53, verdicts.stderr);
    assert.equal(verdicts.stderr.trimEnd().split('\n').length, 1);
    const rows = rowsOf(verdicts.stdout);
    assert.equal(reasonOf(rows, path.basename(genuineFile)), 'valid');
    assert.match(reasonOf(rows, 'other-ca.json'), /not issued by the factory's device CA/);
    assert.match(reasonOf(rows, 'expired.json'), /is not valid now/);
    assert.match(reasonOf(rows, 'before-validity.json'), /was not valid at the report's time/);
    assert.match(reasonOf(rows, 'other-key.json'), /not the key its certificate certifies/);
    assert.match(reasonOf(rows, 'changed.json'), /bad signature/);
    assert.match(reasonOf(rows, 'not-its-name.json'), /issued to "someone-else", not "/);
    for (const row of rows.filter((candidate) => candidate['valid'] !== true))
      assert.equal(row['exitCode'], undefined, 'nothing of a rejected report is shown as trusted');

    // Revoked: by device id, every certificate issued for it; the report that was valid is rejected.
    for (const name of ['other-ca.json', 'expired.json', 'before-validity.json', 'other-key.json', 'changed.json'])
      await fs.rm(path.join(deviceDir, name));
    await fs.rm(path.join(deviceDir, 'not-its-name.json'));
    const repoBefore = await hashTree(factory.repo.dir);
    const unknown = await cli('device', 'revoke', '--repo', factory.repo.dir, 'no-such-device');
    assert.equal(unknown.code, 21, unknown.stderr);
    assert.equal(await hashTree(factory.repo.dir), repoBefore, 'an unknown id revokes nothing');
    const serial = new X509Certificate(genuine.certificate!).serialNumber;
    const revoke = await cli('device', 'revoke', '--repo', factory.repo.dir, id, '--json');
    assert.equal(revoke.code, 0, revoke.stderr);
    const revoked = JSON.parse(revoke.stdout).revoked as { serial: string; device: string }[];
    assert.ok(revoked.some((entry) => entry.serial === serial && entry.device === id));
    const afterRevoke = await cli('reports', bundle, '--repo', factory.repo.dir, '--json');
    assert.equal(afterRevoke.code, 53, afterRevoke.stderr);
    assert.match(
      reasonOf(rowsOf(afterRevoke.stdout), path.basename(genuineFile)),
      new RegExp(`serial ${serial}\\) is revoked`),
    );
    const twice = await cli('device', 'revoke', '--repo', factory.repo.dir, serial.toLowerCase(), '--json');
    assert.equal(twice.code, 0, twice.stderr);
    assert.deepEqual(JSON.parse(twice.stdout).already, [serial]);
  });

  test('registration stays: a registered device without a certificate is trusted beside certified ones', async () => {
    const device = await makeDevice(factory, factory.v1);
    const bundle = await exportTo(factory, factory.v2);
    const install = await cli('install', '--config', device.configDir, '--src-dir', bundle, '--json');
    assert.equal(install.code, 100, install.stderr);
    const envelope = JSON.parse(await fs.readFile(JSON.parse(install.stdout).report, 'utf8'));
    assert.equal(envelope.certificate, undefined, 'a device without a certificate writes none');
    const listed = await cli('reports', bundle, '--repo', factory.repo.dir, '--json');
    assert.equal(listed.code, 0, listed.stderr);
    assert.equal(rowsOf(listed.stdout)[0]!['valid'], true);
  });
});

describe('the X.509 library, loaded only where it is used', () => {
  test('a command line that makes no request or certificate never loads it; ca init does', async () => {
    const ferry = fileURLToPath(new URL('../../src/cli/ferry.js', import.meta.url));
    // reflect-metadata, which is loaded before the library, puts getMetadata on Reflect: the probe prints it at exit.
    const probe =
      'data:text/javascript,process.on("exit",()=>process.stderr.write(`Reflect.getMetadata: ${typeof Reflect.getMetadata}\\n`))';
    const loadedBy = async (...args: string[]): Promise<boolean> => {
      const { stderr } = await promisify(execFile)(process.execPath, ['--import', probe, ferry, ...args]);
      const printed = /Reflect\.getMetadata: (\w+)\n/.exec(stderr);
      assert.ok(printed, stderr);
      return printed[1] === 'function';
    };
    assert.equal(await loadedBy('--version'), false, 'every command line starts without it');
    const repo = path.join(await tempDir('lazy-ca'), 'repo');
    assert.equal((await cli('repo', 'init', repo)).code, 0);
    assert.equal(await loadedBy('ca', 'init', '--repo', repo), true);
  });
});
