import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { canonicalize } from '@tufjs/canonical-json';
import { FerryError } from '../../src/errors.js';
import { OUTCOMES } from '../../src/exit-codes.js';
import { selectTarget } from '../../src/lifecycle/select-target.js';
import { fioCanonicalJson } from '../../src/tuf/foundries/fio-canonical.js';
import { fioKeyIdOf, parseFioKey, type FioPublicKey } from '../../src/tuf/foundries/fio-keys.js';
import { FoundriesMetadataStore } from '../../src/tuf/foundries/fio-metadata-store.js';
import { checkFioSignatures } from '../../src/tuf/foundries/fio-signatures.js';
import { verifyFoundriesStick } from '../../src/tuf/foundries/fio-verify-stick.js';
import { detectStickFormat } from '../../src/tuf/foundries/stick-format.js';
import { asEffectiveTime } from '../../src/tuf/time-floor.js';
import { FioStick, newFioRsaKey } from '../support/foundries-signer.js';

/**
 * The Foundries (fioctl / aktualizr Uptane) format as Foundries' own generator writes it: the fixture stick, which
 * the real aklite-offline accepted, verifies end to end, signature by signature, with aktualizr's canonical form and
 * key ids.
 */

const NOW = new Date('2026-11-30T00:00:00Z');
const COMMIT_1 = 'a12c1cbf058dafd688544d9b5693e30b633d4164e77620639b49c03eea241a2a';
const COMMIT_2 = '14995b380e4922ee6382a549d0e533440d151ee59eeedbd70543094c7bbb1687';

describe('the fixture stick', () => {
  test('verifies end to end: bundle ci/main, targets fio-hw-lmp-1 and -2 with their commits, every role at version 3', async () => {
    const stick = await FioStick.fixture();
    const verified = verifyFoundriesStick({
      trusted: { root: stick.files.get('1.root.json')! },
      files: stick.files,
      now: NOW,
      expectedType: 'ci',
    });
    assert.equal(verified.rootVersion, 1);
    assert.deepEqual(
      { type: verified.bundle.type, tag: verified.bundle.tag, targets: verified.bundle.targets },
      { type: 'ci', tag: 'main', targets: ['fio-hw-lmp-1', 'fio-hw-lmp-2'] },
    );
    assert.equal(verified.bundle.signedAt, undefined);
    assert.equal(verified.bundle.offlineSignaturesMissing, 0);
    assert.deepEqual(verified.unusable, []);
    assert.deepEqual(
      verified.targets.map((target) => [target.name, target.version, target.commit, target.hardwareIds, target.tags]),
      [
        ['fio-hw-lmp-1', '1', COMMIT_1, ['fio-hw'], ['main']],
        ['fio-hw-lmp-2', '2', COMMIT_2, ['fio-hw'], ['main']],
      ],
    );
    assert.deepEqual(verified.trustedAfter.versions, { timestamp: 3, snapshot: 3, targets: 3 });
    assert.ok(Buffer.from(verified.trustedAfter.root).equals(Buffer.from(stick.files.get('1.root.json')!)));
  });

  test('what it returns is what install selects from: a device at fio-hw following main takes fio-hw-lmp-2', async () => {
    const stick = await FioStick.fixture();
    const verified = verifyFoundriesStick({
      trusted: { root: stick.files.get('1.root.json')! },
      files: stick.files,
      now: NOW,
    });
    const selected = selectTarget({
      ...verified,
      facts: { hardwareId: 'fio-hw', tags: ['main'], production: false },
      commitsInBundle: new Set([COMMIT_1, COMMIT_2]),
    });
    assert.equal(selected.name, 'fio-hw-lmp-2');
  });

  test('a device that already trusts its metadata verifies it again (equal versions are no rollback)', async () => {
    const stick = await FioStick.fixture();
    const verified = verifyFoundriesStick({
      trusted: { root: stick.files.get('1.root.json')!, versions: { timestamp: 3, snapshot: 3, targets: 3 } },
      files: stick.files,
      now: NOW,
    });
    assert.equal(verified.targets.length, 2);
  });

  test('every signature of every file verifies over the canonical form, with the key ids of aktualizr', async () => {
    const stick = await FioStick.fixture();
    const root = stick.json('1.root.json').signed;
    const keys = new Map<string, FioPublicKey>();
    for (const [keyId, key] of Object.entries(root.keys)) {
      assert.equal(fioKeyIdOf((key as { keyval: { public: string } }).keyval.public), keyId);
      keys.set(keyId, parseFioKey(keyId, key, '1.root.json'));
    }
    const roleOf: Record<string, string> = {
      '1.root.json': 'root',
      'timestamp.json': 'timestamp',
      'snapshot.json': 'snapshot',
      'targets.json': 'targets',
      'bundle-targets.json': 'targets',
    };
    for (const [file, roleName] of Object.entries(roleOf)) {
      const document = stick.json(file);
      assert.equal(document.signatures.length, 1, file);
      const role = { keyIds: root.roles[roleName].keyids, threshold: 1 };
      assert.equal(
        checkFioSignatures({ file, roleName, role, keys, signed: document.signed, signatures: document.signatures }),
        1,
        file,
      );
      // @tufjs/canonical-json gives the same bytes for the fixture's plain ASCII.
      assert.equal(canonicalize(document.signed), fioCanonicalJson(document.signed), file);
    }
  });

  test("timestamp.json's hashes and length are those of snapshot.json as the generator wrote it (its canonical form)", async () => {
    const stick = await FioStick.fixture();
    const snapshot = Buffer.from(stick.files.get('snapshot.json')!);
    const named = stick.json('timestamp.json').signed.meta['snapshot.json'];
    assert.ok(snapshot.equals(Buffer.from(fioCanonicalJson(JSON.parse(snapshot.toString())))));
    assert.equal(named.length, snapshot.length);
    assert.equal(named.hashes.sha256, createHash('sha256').update(snapshot).digest('hex'));
  });
});

describe('canonical form and key ids', () => {
  test('control characters and non-ASCII are escaped as jsoncpp escapes them, where OLPC canonical JSON leaves them raw', () => {
    const value = { b: 'line\nnext\ttab "q" \\ é 😀 \u0001 \u007f', a: [1, true, null] };
    assert.equal(
      fioCanonicalJson(value),
      '{"a":[1,true,null],"b":"line\\nnext\\ttab \\"q\\" \\\\ \\u00e9 \\ud83d\\ude00 \\u0001 \u007f"}',
    );
    assert.notEqual(canonicalize({ pem: 'a\nb' }), fioCanonicalJson({ pem: 'a\nb' }));
  });

  test('object keys are sorted by their UTF-8 bytes; a fraction is refused (16)', () => {
    assert.equal(
      fioCanonicalJson({ '\uff01': 1, '\u{10000}': 2, b: 3, B: 4 }),
      '{"B":4,"b":3,"\\uff01":1,"\\ud800\\udc00":2}',
    );
    assert.throws(
      () => fioCanonicalJson({ version: 1.5 }),
      (error) => error instanceof FerryError && OUTCOMES[error.outcome].exitCode === 16,
    );
  });

  test("an RSA key's id is sha256 of the JSON string of its PEM without trailing newlines", () => {
    const pem = newFioRsaKey().json.keyval.public;
    assert.ok(pem.endsWith('\n'));
    const expected = createHash('sha256')
      .update(JSON.stringify(pem.replace(/\n+$/, '')))
      .digest('hex');
    assert.equal(fioKeyIdOf(pem), expected);
    assert.equal(fioKeyIdOf(`${pem}\n\n`), expected);
    assert.equal(parseFioKey(expected, { keytype: 'RSA', keyval: { public: pem } }, 'root.json').type, 'rsa');
  });
});

describe('telling the formats apart', () => {
  const json = (type: string) => Buffer.from(JSON.stringify({ signed: { _type: type }, signatures: [] }));

  test('the fixture is a Foundries stick; lower-case TUF types are a ferry stick', async () => {
    assert.equal(detectStickFormat((await FioStick.fixture()).files), 'foundries');
    const ferry = new Map([
      ['1.root.json', json('root')],
      ['timestamp.json', json('timestamp')],
      ['bundle-targets.json', json('bundle')],
    ]);
    assert.equal(detectStickFormat(ferry), 'ferry');
  });

  test('neither format, both formats, or no metadata at all: refused with one line (16, 16, 14)', () => {
    const cases: Array<[Map<string, Uint8Array>, number, RegExp]> = [
      [new Map([['timestamp.json', json('stamp')]]), 16, /^tuf\/: neither a ferry nor a Foundries stick/],
      [
        new Map([
          ['1.root.json', json('Root')],
          ['timestamp.json', json('timestamp')],
        ]),
        16,
        /mixes the ferry and the Foundries format/,
      ],
      [new Map([['targets.json', json('Targets')]]), 14, /no timestamp\.json/],
    ];
    for (const [files, code, pattern] of cases) {
      assert.throws(
        () => detectStickFormat(files),
        (error) =>
          error instanceof FerryError &&
          OUTCOMES[error.outcome].exitCode === code &&
          pattern.test(error.message) &&
          !error.message.includes('\n'),
      );
    }
  });
});

describe('the metadata store', () => {
  test('refuses calls out of order: no snapshot before the timestamp, no root after it, nothing twice', async () => {
    const stick = await FioStick.fixture();
    const store = new FoundriesMetadataStore({ root: stick.files.get('1.root.json')! }, asEffectiveTime(NOW));
    assert.throws(() => store.updateSnapshot(stick.files.get('snapshot.json')!), /after timestamp/);
    assert.throws(() => store.targetInfo('fio-hw-lmp-1'), /not loaded/);
    store.updateTimestamp(stick.files.get('timestamp.json')!);
    assert.throws(() => store.updateTimestamp(stick.files.get('timestamp.json')!), /already loaded/);
    assert.throws(() => store.updateRoot(stick.files.get('1.root.json')!), /before timestamp/);
    assert.throws(() => store.verifyBundleTargets(stick.files.get('bundle-targets.json')!), /after targets/);
    assert.throws(() => store.trustedState(), /only after targets/);
  });

  test('a damaged trusted root is a fault of the device state, not of the stick: 4', () => {
    assert.throws(
      () => new FoundriesMetadataStore({ root: Buffer.from('{"signed":') }, asEffectiveTime(NOW)),
      (error) => error instanceof FerryError && OUTCOMES[error.outcome].exitCode === 4,
    );
  });
});
