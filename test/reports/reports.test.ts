import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, verify } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { canonicalize } from '@tufjs/canonical-json';
import { parseDevicePublicKey } from '../../src/device/device-key.js';
import { reportFileName, signReport, verifyReport, type SignedReport } from '../../src/reports/signed-report.js';
import { signingKeyFromPem } from '../../src/tuf/keys.js';
import { cli } from '../support/cli.js';
import {
  buildFactory,
  exportTo,
  freshDeviceConfig as freshConfig,
  tempDir,
  type TestFactory,
} from '../support/factory.js';
import { makeDevice, statusOf, type TestDevice } from '../support/sim-device.js';
import { flipSignatureBit } from '../support/tamper.js';
import { hashTree } from '../support/tree-hash.js';

let factory: TestFactory;

before(async () => {
  factory = await buildFactory();
});

const deviceIdOf = async (device: TestDevice): Promise<string> =>
  (await fs.readFile(device.device.paths.deviceIdFile, 'utf8')).trim();

/** The report files under `<media>/reports/`, relative to it, sorted. */
async function reportFiles(media: string): Promise<string[]> {
  const root = path.join(media, 'reports');
  const found: string[] = [];
  for (const device of await fs.readdir(root).catch(() => [] as string[]))
    for (const name of await fs.readdir(path.join(root, device))) found.push(path.join(device, name));
  return found.sort();
}

/** The report a device with another key would write for `device`: what a forger with a key of their own can do. */
function foreignReport(signed: SignedReport): Buffer {
  const { privateKey } = generateKeyPairSync('ed25519');
  return signReport(signed, signingKeyFromPem(privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()));
}

describe('report format (pure)', () => {
  const { privateKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  const key = parseDevicePublicKey(pem);
  const signed: SignedReport = {
    _type: 'ferry-report',
    version: 1,
    device: 'unit-1',
    step: 'run',
    target: { name: 'sim-lmp-2', version: '2' },
    current: { name: 'sim-lmp-2', version: '2' },
    exitCode: 0,
    outcome: 'UPDATE_SUCCEEDED',
    state: 'DONE',
    error: null,
    at: '2024-05-01T12:00:00.000Z',
  };
  const bytes = signReport(signed, signingKeyFromPem(pem));
  const keys = (id: string) => (id === 'unit-1' ? key : undefined);

  test('a signed report verifies, and its file name is UTC without colons', () => {
    assert.deepEqual(verifyReport(bytes, 'unit-1', keys), { valid: true, report: signed });
    assert.equal(reportFileName(new Date(signed.at), 'run'), '2024-05-01T12-00-00-000Z-run.json');
    assert.equal(reportFileName(new Date(signed.at), 'run', 2), '2024-05-01T12-00-00-000Z-run-2.json');
  });

  test('an added field, a changed field, a truncated signature and a wrong type are rejected', () => {
    const envelope = JSON.parse(bytes.toString());
    const variant = (change: (copy: any) => void) => {
      const copy = structuredClone(envelope);
      change(copy);
      return verifyReport(Buffer.from(JSON.stringify(copy)), 'unit-1', keys);
    };
    assert.match(String((variant((c) => (c.signed.extra = 1)) as any).reason), /unknown field "extra"/);
    assert.match(String((variant((c) => (c.signed.state = 'ERROR')) as any).reason), /bad signature/);
    assert.match(String((variant((c) => (c.signature.sig = c.signature.sig.slice(2))) as any).reason), /signature/);
    assert.match(String((variant((c) => (c.signed.exitCode = '0')) as any).reason), /malformed "exitCode"/);
    assert.equal(verifyReport(Buffer.alloc(70 * 1024, 32), 'unit-1', keys).valid, false);
  });
});

describe('device keys', () => {
  test('device provision creates the key once (0600, id beside it) and never replaces it; another --id is refused (56)', async () => {
    const { config, storage } = await freshConfig();
    const keyFile = path.join(storage, 'ferry', 'device-key.pem');
    const first = await cli('device', 'provision', '--config', config, '--id', 'line-7-unit-1', '--json');
    assert.equal(first.code, 0, first.stderr);
    const created = JSON.parse(first.stdout);
    assert.equal(created.created, true);
    assert.equal(created.id, 'line-7-unit-1');
    assert.match(created.publicKey, /^-----BEGIN PUBLIC KEY-----/);
    assert.equal((await fs.stat(keyFile)).mode & 0o777, 0o600);
    assert.equal(await fs.readFile(path.join(storage, 'ferry', 'device-key.pub'), 'utf8'), created.publicKey);
    assert.equal((await fs.readFile(path.join(storage, 'ferry', 'device-id'), 'utf8')).trim(), 'line-7-unit-1');

    const before = await hashTree(storage);
    const again = await cli('device', 'provision', '--config', config);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /already provisioned: device id line-7-unit-1\n-----BEGIN PUBLIC KEY-----/);
    assert.ok(again.stdout.includes(created.publicKey.trim()), 'the same public key is printed');
    const sameId = await cli('device', 'provision', '--config', config, '--id', 'line-7-unit-1', '--json');
    assert.equal(JSON.parse(sameId.stdout).created, false);

    const other = await cli('device', 'provision', '--config', config, '--id', 'line-7-unit-2');
    assert.equal(other.code, 56);
    assert.equal(other.stderr.trimEnd().split('\n').length, 1);
    assert.match(other.stderr, /already provisioned as "line-7-unit-1"/);
    assert.equal(await hashTree(storage), before, 'the key files did not change');

    const badId = await cli('device', 'provision', '--config', config, '--id', '../x');
    assert.equal(badId.code, 2);
  });

  test('the default id is the first 16 hex of the sha256 of the raw public key', async () => {
    const { config } = await freshConfig();
    const result = await cli('device', 'provision', '--config', config, '--json');
    assert.equal(result.code, 0, result.stderr);
    const { id, publicKey } = JSON.parse(result.stdout);
    const raw = parseDevicePublicKey(publicKey).raw;
    const { createHash } = await import('node:crypto');
    assert.equal(id, createHash('sha256').update(raw).digest('hex').slice(0, 16));
    assert.equal(raw.length, 32);
  });

  test('sim create provisions the device and registers its key in the factory repo', async () => {
    const device = await makeDevice(factory, factory.v1);
    const id = await deviceIdOf(device);
    const registered = await fs.readFile(path.join(factory.repo.dir, 'devices', `${id}.pub`), 'utf8');
    assert.equal(registered, await fs.readFile(device.device.paths.devicePublicKeyFile, 'utf8'));
    assert.equal((await fs.stat(device.device.paths.deviceKeyFile)).mode & 0o777, 0o600);
  });

  test('device register stores the key, accepts the same key again, refuses another key for the id (55) and a bad key (57)', async () => {
    const { config } = await freshConfig();
    const provisioned = JSON.parse((await cli('device', 'provision', '--config', config, '--json')).stdout);
    const keyFile = path.join(path.dirname(config), 'device-key.pub');
    await fs.writeFile(keyFile, provisioned.publicKey);
    const register = (key: string) =>
      cli('device', 'register', '--repo', factory.repo.dir, '--id', provisioned.id, '--key', key, '--json');

    const first = await register(keyFile);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(JSON.parse(first.stdout).created, true);
    const stored = path.join(factory.repo.dir, 'devices', `${provisioned.id}.pub`);
    assert.equal(await fs.readFile(stored, 'utf8'), provisioned.publicKey);
    const again = await register(keyFile);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(JSON.parse(again.stdout).created, false);

    const otherKey = path.join(path.dirname(config), 'other.pub');
    await fs.writeFile(
      otherKey,
      generateKeyPairSync('ed25519').publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    );
    const conflict = await register(otherKey);
    assert.equal(conflict.code, 55);
    assert.match(conflict.stderr, /already registered .* with another key/);
    assert.equal(await fs.readFile(stored, 'utf8'), provisioned.publicKey, 'the registered key stays');

    const rsaKey = path.join(path.dirname(config), 'rsa.pub');
    await fs.writeFile(
      rsaKey,
      generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    );
    assert.equal((await register(rsaKey)).code, 57);
    const garbage = path.join(path.dirname(config), 'garbage.pub');
    await fs.writeFile(garbage, 'not a key\n');
    assert.equal((await register(garbage)).code, 57);
    assert.equal((await register(path.join(path.dirname(config), 'missing.pub'))).code, 57);
  });
});

describe('reports back to the stick', () => {
  test('install and run each leave a report signed by the device key; ferry reports verifies both (0)', async () => {
    const device = await makeDevice(factory, factory.v1);
    const id = await deviceIdOf(device);
    const bundle = await exportTo(factory, factory.v2);

    const install = await cli('install', '--config', device.configDir, '--src-dir', bundle, '--json');
    assert.equal(install.code, 100, install.stderr);
    assert.doesNotMatch(install.stderr, /warning/);
    const installed = JSON.parse(install.stdout);
    assert.equal(path.dirname(installed.report), path.join(bundle, 'reports', id));
    assert.match(path.basename(installed.report), /^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z-install\.json$/);
    assert.equal((await statusOf(device))['lastMedia'], bundle);

    assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
    const run = await cli('run', '--config', device.configDir, '--json');
    assert.equal(run.code, 0, run.stderr);
    assert.doesNotMatch(run.stderr, /warning/);
    const ran = JSON.parse(run.stdout);
    assert.match(path.basename(ran.report), /-run\.json$/);
    assert.deepEqual(
      await reportFiles(bundle),
      [installed.report, ran.report].map((file: string) => path.relative(path.join(bundle, 'reports'), file)).sort(),
    );

    const publicKey = parseDevicePublicKey(await fs.readFile(device.device.paths.devicePublicKeyFile));
    for (const [file, expected] of [
      [
        installed.report,
        { step: 'install', exitCode: 100, outcome: 'REBOOT_REQUIRED', state: 'INPROGRESS', current: '1' },
      ],
      [ran.report, { step: 'run', exitCode: 0, outcome: 'UPDATE_SUCCEEDED', state: 'DONE', current: '2' }],
    ] as const) {
      const envelope = JSON.parse(await fs.readFile(file, 'utf8'));
      const signed = envelope.signed;
      assert.equal(signed._type, 'ferry-report');
      assert.equal(signed.device, id);
      assert.equal(signed.step, expected.step);
      assert.equal(signed.exitCode, expected.exitCode);
      assert.equal(signed.outcome, expected.outcome);
      assert.equal(signed.state, expected.state);
      assert.deepEqual(signed.target, { name: factory.v2, version: '2' });
      assert.equal(signed.current.version, expected.current);
      assert.equal(signed.error, null);
      assert.equal(envelope.signature.keyid, publicKey.keyId);
      assert.ok(
        verify(null, Buffer.from(canonicalize(signed)), publicKey.key, Buffer.from(envelope.signature.sig, 'hex')),
        'the signature is the device key over the canonical JSON of "signed"',
      );
    }

    const listed = await cli('reports', bundle, '--repo', factory.repo.dir, '--json');
    assert.equal(listed.code, 0, listed.stderr);
    const rows = JSON.parse(listed.stdout).rows;
    assert.equal(rows.length, 2);
    assert.deepEqual(
      rows.map((row: Record<string, unknown>) => [row['device'], row['valid'], row['step'], row['exitCode']]),
      [
        [id, true, 'install', 100],
        [id, true, 'run', 0],
      ],
    );
    const table = await cli('reports', bundle, '--repo', factory.repo.dir);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^device\s+step\s+target\s+result\s+when\s+signature$/);
    assert.match(
      lines[1]!,
      new RegExp(`^${id}\\s+install\\s+${factory.v2} \\(2\\)\\s+100 REBOOT_REQUIRED\\s+\\S+Z\\s+valid$`),
    );
    assert.match(
      lines[2]!,
      new RegExp(`^${id}\\s+run\\s+${factory.v2} \\(2\\)\\s+0 UPDATE_SUCCEEDED\\s+\\S+Z\\s+valid$`),
    );
    assert.match(lines[3]!, /2 reports on .*, all valid/);
  });

  test('a forged report, one signed by another key, an unknown device and garbage are rejected (53)', async () => {
    const device = await makeDevice(factory, factory.v1);
    const id = await deviceIdOf(device);
    const bundle = await exportTo(factory, factory.v2);
    const empty = await cli('reports', bundle, '--repo', factory.repo.dir);
    assert.equal(empty.code, 0, empty.stderr);
    assert.match(empty.stdout, /^no reports on /);
    const missing = await cli('reports', path.join(bundle, 'no-such-stick'), '--repo', factory.repo.dir);
    assert.equal(missing.code, 54);
    assert.match(missing.stderr, /^ferry: cannot read the media .*no-such-stick/);
    const install = await cli('install', '--config', device.configDir, '--src-dir', bundle, '--json');
    assert.equal(install.code, 100, install.stderr);
    const genuine = JSON.parse(install.stdout).report as string;
    const text = await fs.readFile(genuine, 'utf8');
    const deviceDir = path.join(bundle, 'reports', id);

    // One byte of the signed part changed: the install "succeeded with 0".
    const forged = text.replace('"exitCode": 100', '"exitCode": 0');
    assert.notEqual(forged, text);
    await fs.writeFile(path.join(deviceDir, 'forged.json'), forged);
    const forgedOnly = await cli('reports', bundle, '--repo', factory.repo.dir, '--json');
    assert.equal(forgedOnly.code, 53, forgedOnly.stdout);
    assert.equal(forgedOnly.stderr.trimEnd().split('\n').length, 1);
    const forgedRows = JSON.parse(forgedOnly.stdout).rows as Record<string, unknown>[];
    assert.deepEqual(
      forgedRows.map((row) => [path.basename(String(row['file'])), row['valid']]).sort(),
      [
        [path.basename(genuine), true],
        ['forged.json', false],
      ].sort(),
    );
    assert.match(String(forgedRows.find((row) => !row['valid'])!['reason']), /bad signature/);
    assert.equal(forgedRows.find((row) => !row['valid'])!['exitCode'], undefined, 'nothing of it is trusted');

    const signed = JSON.parse(text).signed as SignedReport;
    await fs.writeFile(path.join(deviceDir, 'other-key.json'), foreignReport(signed));
    await fs.mkdir(path.join(bundle, 'reports', 'stranger'));
    await fs.writeFile(
      path.join(bundle, 'reports', 'stranger', 'report.json'),
      foreignReport({ ...signed, device: 'stranger' }),
    );
    await fs.writeFile(path.join(deviceDir, 'garbage.json'), '{"signed": {');
    const all = await cli('reports', bundle, '--repo', factory.repo.dir, '--json');
    assert.equal(all.code, 53);
    const reasons = Object.fromEntries(
      (JSON.parse(all.stdout).rows as Record<string, unknown>[]).map((row) => [
        path.basename(String(row['file'])),
        row['valid'] ? 'valid' : String(row['reason']),
      ]),
    );
    assert.equal(reasons[path.basename(genuine)], 'valid');
    assert.match(reasons['forged.json']!, /bad signature/);
    assert.match(reasons['other-key.json']!, /not the device's registered key/);
    assert.match(reasons['report.json']!, /unknown device "stranger"/);
    assert.match(reasons['garbage.json']!, /not JSON/);

    const table = await cli('reports', bundle, '--repo', factory.repo.dir);
    assert.equal(table.code, 53);
    assert.equal((table.stdout.match(/REJECTED/g) ?? []).length, 4, table.stdout);
    assert.match(table.stderr, /^ferry: 5 reports on .*: 4 rejected/);

    // A report moved under another registered device's directory is not that device's report.
    const other = await makeDevice(factory, factory.v1);
    const otherDir = path.join(bundle, 'reports', await deviceIdOf(other));
    await fs.mkdir(otherDir);
    await fs.copyFile(genuine, path.join(otherDir, 'moved.json'));
    const moved = JSON.parse((await cli('reports', bundle, '--repo', factory.repo.dir, '--json')).stdout);
    const movedRow = (moved.rows as Record<string, unknown>[]).find((row) =>
      String(row['file']).endsWith('moved.json'),
    );
    assert.match(String(movedRow!['reason']), /filed under device .* but names device/);
  });

  test('a refusal leaves its report (exit code and reason) on the stick and nothing on the device', async () => {
    const device = await makeDevice(factory, factory.v1);
    const bundle = await exportTo(factory, factory.otherBoard);
    const before = await device.fingerprint();
    const result = await cli('install', '--config', device.configDir, '--src-dir', bundle);
    assert.equal(result.code, 7);
    assert.equal(result.stderr.trimEnd().split('\n').length, 1, result.stderr);
    assert.equal(await device.fingerprint(), before);
    const files = await reportFiles(bundle);
    assert.equal(files.length, 1);
    const signed = JSON.parse(await fs.readFile(path.join(bundle, 'reports', files[0]!), 'utf8')).signed;
    assert.equal(signed.exitCode, 7);
    assert.equal(signed.outcome, 'WRONG_HARDWARE_ID');
    assert.equal(signed.state, 'WONTGO');
    assert.equal(signed.target, null);
    assert.match(signed.error, /hardware/);
    const listed = await cli('reports', bundle, '--repo', factory.repo.dir);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /7 WRONG_HARDWARE_ID/);
  });

  test('a .tar bundle reports beside the file; a run whose media is gone warns and keeps its exit code', async () => {
    const device = await makeDevice(factory, factory.v1);
    const media = path.join(await tempDir('stick'), 'stick');
    await fs.mkdir(media);
    const archive = await exportTo(factory, factory.v2, { destination: path.join(media, 'v2.tar'), archive: 'tar' });
    const install = await cli('install', '--config', device.configDir, '--src-dir', archive);
    assert.equal(install.code, 100, install.stderr);
    const files = await reportFiles(media);
    assert.equal(files.length, 1);
    assert.match(files[0]!, /-install\.json$/);

    await fs.rm(media, { recursive: true });
    assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
    const run = await cli('run', '--config', device.configDir);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /^ferry: warning: cannot write the report to .*: .*\n$/);
    await assert.rejects(fs.access(media), 'the missing media was not created on the device');
    assert.equal((await statusOf(device))['state'], 'DONE');
  });

  test('a read-only stick: install still exits 100, warns once on stderr and writes no report', async (t) => {
    const device = await makeDevice(factory, factory.v1);
    const bundle = await exportTo(factory, factory.v2);
    const readOnly = path.join(await tempDir('ro-stick'), 'mnt');
    await fs.mkdir(readOnly);
    const bind = spawnSync('mount', ['--bind', bundle, readOnly], { encoding: 'utf8' });
    if (bind.status !== 0) {
      assert.notEqual(process.env['CI'], 'true', `mount --bind failed under CI: ${bind.stderr}`);
      t.skip(`cannot mount here: ${bind.stderr.trim()}`);
      return;
    }
    try {
      const remount = spawnSync('mount', ['-o', 'remount,ro,bind', readOnly], { encoding: 'utf8' });
      assert.equal(remount.status, 0, remount.stderr);
      await assert.rejects(fs.writeFile(path.join(readOnly, 'probe'), 'x'), /EROFS/);

      const install = await cli('install', '--config', device.configDir, '--src-dir', readOnly);
      assert.equal(install.code, 100, install.stderr);
      assert.match(install.stdout, /reboot/);
      const lines = install.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, install.stderr);
      assert.match(lines[0]!, /^ferry: warning: cannot write the report to .*reports.*: .*read-only/i);
      assert.deepEqual(await reportFiles(readOnly), []);

      // A failure keeps its one line on stderr; the warning goes into the --json data.
      const refused = await cli('install', '--config', device.configDir, '--src-dir', readOnly, '--json');
      assert.equal(refused.code, 30);
      assert.equal(refused.stderr.trimEnd().split('\n').length, 1, refused.stderr);
      assert.doesNotMatch(refused.stderr, /warning/);
      assert.match(JSON.parse(refused.stdout).reportWarning, /cannot write the report/);
    } finally {
      const unmount = spawnSync('umount', [readOnly], { encoding: 'utf8' });
      assert.equal(unmount.status, 0, unmount.stderr);
    }
    assert.deepEqual(await reportFiles(bundle), [], 'nothing reached the bundle through the read-only mount');
  });
});

describe('reports go only to media that holds a verified bundle', () => {
  test('a --src-dir that is a plain file, or the tuf/ of a bundle: 13 with one line, nothing written anywhere', async () => {
    const device = await makeDevice(factory, factory.v1);
    const bundle = await exportTo(factory, factory.v2);
    const system = await tempDir('system');
    const passwd = path.join(system, 'passwd');
    await fs.writeFile(passwd, 'root:x:0:0:root:/root:/bin/sh\n');
    const deviceBefore = await hashTree(device.dir);
    const bundleBefore = await hashTree(bundle);

    const file = await cli('install', '--config', device.configDir, '--src-dir', passwd, '--json');
    assert.equal(file.code, 13, file.stderr);
    assert.equal(file.stderr.trimEnd().split('\n').length, 1);
    assert.match(file.stderr, /passwd is neither a bundle directory nor a tar or zip bundle/);
    assert.equal(JSON.parse(file.stdout).report, undefined);
    assert.deepEqual(await fs.readdir(system), ['passwd'], 'no reports/ beside the file');

    const part = await cli('install', '--config', device.configDir, '--src-dir', path.join(bundle, 'tuf'));
    assert.equal(part.code, 13, part.stderr);
    assert.equal(part.stderr.trimEnd().split('\n').length, 1);
    assert.match(
      part.stderr,
      new RegExp(`tuf is not a bundle: it has no tuf/ directory \\(it is the tuf/ of the bundle ${bundle}\\)`),
    );
    assert.equal(await hashTree(bundle), bundleBefore, 'nothing written into the bundle');
    assert.equal(await hashTree(device.dir), deviceBefore, 'nothing written on the device, not even its status');
  });

  test('a bundle that fails verification gets no report, and is not where a later run reports', async () => {
    const device = await makeDevice(factory, factory.v1);
    const good = await exportTo(factory, factory.v2);
    assert.equal((await cli('install', '--config', device.configDir, '--src-dir', good)).code, 100);

    const forged = await exportTo(factory, factory.v2);
    await flipSignatureBit(forged, 'targets.json');
    const forgedBefore = await hashTree(forged);
    const refused = await cli('install', '--config', device.configDir, '--src-dir', forged, '--json');
    assert.equal(refused.code, 11, refused.stderr);
    const answer = JSON.parse(refused.stdout);
    assert.equal(answer.report, undefined);
    assert.equal(answer.reportWarning, undefined);
    assert.equal(await hashTree(forged), forgedBefore, 'no reports/ on the forged stick');
    assert.equal((await statusOf(device))['lastMedia'], good);

    assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
    const run = await cli('run', '--config', device.configDir, '--json');
    assert.equal(run.code, 0, run.stderr);
    assert.equal(path.dirname(path.dirname(JSON.parse(run.stdout).report)), path.join(good, 'reports'));
    assert.equal(await hashTree(forged), forgedBefore);
  });
});
