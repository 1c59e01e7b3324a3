import assert from 'node:assert/strict';
import { createHash, createPublicKey } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { FerryError } from '../../src/errors.js';
import { OUTCOMES } from '../../src/exit-codes.js';
import { selectTarget } from '../../src/lifecycle/select-target.js';
import { fioCanonicalJson } from '../../src/tuf/foundries/fio-canonical.js';
import { fioKeyIdOf } from '../../src/tuf/foundries/fio-keys.js';
import type { FoundriesTrustedState } from '../../src/tuf/foundries/fio-metadata-store.js';
import { verifyFoundriesStick, type VerifiedFoundriesMetadata } from '../../src/tuf/foundries/fio-verify-stick.js';
import { effectiveTime, type EffectiveTime } from '../../src/tuf/time-floor.js';
import {
  FioStick,
  fioFixtureKeys,
  newFioKey,
  newFioRsaKey,
  setFioRoleKeys,
  type FioRoleName,
  type FioSigningKey,
} from '../support/foundries-signer.js';

/**
 * The hostile corpus of the ferry format, rebuilt for the Foundries format: each case forges one property of the
 * fixture stick with the fixture's own keys (or keys made here) and offers it to a device that trusts the fixture's
 * root. Each is refused with the outcome the ferry format gives the same attack and a one-line reason, and the
 * trusted state the device passed in is left as it was.
 */

const NOW = new Date('2026-11-30T00:00:00Z');
const PAST = '2026-11-29T00:00:00Z';
const COMMITS = new Set([
  'a12c1cbf058dafd688544d9b5693e30b633d4164e77620639b49c03eea241a2a',
  '14995b380e4922ee6382a549d0e533440d151ee59eeedbd70543094c7bbb1687',
]);

let fixture: FioStick;
let keys: Record<FioRoleName, FioSigningKey>;
before(async () => {
  fixture = await FioStick.fixture();
  keys = await fioFixtureKeys();
});

const stick = (): FioStick => fixture.clone();
const trustFixture = (): FoundriesTrustedState => ({ root: fixture.files.get('1.root.json')! });

function verify(
  forged: FioStick,
  trusted: FoundriesTrustedState = trustFixture(),
  now: Date | EffectiveTime = NOW,
): VerifiedFoundriesMetadata {
  return verifyFoundriesStick({ trusted, files: forged.files, now, expectedType: 'ci' });
}

const digest = (state: FoundriesTrustedState): string =>
  createHash('sha256')
    .update(state.root)
    .update(JSON.stringify(state.versions ?? null))
    .digest('hex');

/** The stick is refused with `exitCode`, one line matching `pattern`; the trusted state is untouched. */
function assertRefused(
  forged: FioStick,
  exitCode: number,
  pattern: RegExp,
  trusted: FoundriesTrustedState = trustFixture(),
  now: Date | EffectiveTime = NOW,
): void {
  const before = digest(trusted);
  assert.throws(
    () => verify(forged, trusted, now),
    (error: unknown) => {
      assert.ok(error instanceof FerryError, String(error));
      assert.equal(OUTCOMES[error.outcome].exitCode, exitCode, error.message);
      assert.match(error.message, pattern);
      assert.doesNotMatch(error.message, /\n/);
      return true;
    },
  );
  assert.equal(digest(trusted), before);
}

/** An ed25519 key's public PEM, from the raw hex the format carries. */
function edPem(key: FioSigningKey): string {
  const der = Buffer.concat([
    Buffer.from('302a300506032b6570032100', 'hex'),
    Buffer.from(key.json.keyval.public, 'hex'),
  ]);
  return createPublicKey({ key: der, format: 'der', type: 'spki' }).export({ format: 'pem', type: 'spki' }).toString();
}

/** Flips one bit of the first signature of `file`. */
function flipSignature(forged: FioStick, file: string): void {
  const document = forged.json(file);
  const sig = Buffer.from(document.signatures[0].sig, 'base64');
  sig[0] = sig[0]! ^ 0x01;
  document.signatures[0].sig = sig.toString('base64');
  forged.write(file, document);
}

/** The stick with 2.root.json, made from root 1 by `mutate` and signed by the fixture's root key. */
function withRoot2(mutate: (root: Record<string, any>) => void, signers?: FioSigningKey[]): FioStick {
  const forged = stick();
  forged.addRoot(signers ?? [keys.root], mutate);
  return forged;
}

describe('Foundries format, hostile: signatures, methods, key ids and thresholds', () => {
  for (const file of ['timestamp.json', 'snapshot.json', 'targets.json', 'bundle-targets.json']) {
    test(`a flipped bit in the signature of ${file}: 11`, () => {
      const forged = stick();
      flipSignature(forged, file);
      // A changed snapshot.json no longer matches the hashes timestamp.json names: stamp it again, so that only
      // its signature is wrong.
      if (file === 'snapshot.json') forged.restampSnapshot(keys.timestamp);
      if (file === 'targets.json') forged.restampTargets(keys.snapshot, keys.timestamp);
      assertRefused(forged, 11, new RegExp(`^tuf/${file.replace('.', '\\.')}: 0 valid signature\\(s\\) from`));
    });
  }

  test('a flipped bit in the signature of 2.root.json: 11', () => {
    const forged = withRoot2(() => {});
    flipSignature(forged, '2.root.json');
    assertRefused(forged, 11, /^tuf\/2\.root\.json: 0 valid signature\(s\) from root keys, threshold is 1$/);
  });

  test('targets.json with its content changed and its old signature kept: 11', () => {
    const forged = stick();
    const document = forged.json('targets.json');
    document.signed.targets['fio-hw-lmp-2'].custom.version = '9';
    forged.write('targets.json', document);
    forged.restampTargets(keys.snapshot, keys.timestamp);
    assertRefused(forged, 11, /^tuf\/targets\.json: 0 valid signature/);
  });

  test('targets.json signed by the snapshot key: 11', () => {
    const forged = stick();
    forged.resign('targets.json', [keys.snapshot]);
    forged.restampTargets(keys.snapshot, keys.timestamp);
    assertRefused(forged, 11, /^tuf\/targets\.json: 0 valid signature\(s\) from targets keys/);
  });

  test('a method lie: an ed25519 signature that claims rsassa-pss-sha256: 11', () => {
    const forged = stick();
    const document = forged.json('targets.json');
    document.signatures[0].method = 'rsassa-pss-sha256';
    forged.write('targets.json', document);
    forged.restampTargets(keys.snapshot, keys.timestamp);
    assertRefused(
      forged,
      11,
      /^tuf\/targets\.json: the signature of key \w+ claims method "rsassa-pss-sha256", but it is an ED25519 key$/,
    );
  });

  test('a method lie: an RSA key whose signature claims ed25519: 11', () => {
    const rsa = newFioRsaKey();
    const forged = withRoot2((root) => setFioRoleKeys(root, 'targets', [rsa], 1));
    forged.resign('targets.json', [{ ...rsa, method: 'ed25519' }]);
    forged.restampTargets(keys.snapshot, keys.timestamp);
    assertRefused(forged, 11, /claims method "ed25519", but it is an RSA key$/);
  });

  test('a signature method aktualizr does not know: 11', () => {
    const forged = stick();
    forged.resign('timestamp.json', [{ ...keys.timestamp, method: 'hmac-sha256' }]);
    assertRefused(forged, 11, /^tuf\/timestamp\.json: signature method "hmac-sha256" is not supported$/);
  });

  test('a key filed under an id that is not its own (the real key of another role): 11', () => {
    const forged = withRoot2((root) => {
      // The targets role keeps its id, but the key filed under it is the snapshot key.
      root.keys[keys.targets.keyId] = keys.snapshot.json;
    });
    assertRefused(
      forged,
      11,
      /^tuf\/2\.root\.json: key id \w+ does not match its key \(by aktualizr's rule its id is \w+\)$/,
    );
  });

  test("keys filed under fioctl's id (the whole key's canonical JSON) and ota-tuf's (its DER): accepted", () => {
    const rsa = newFioRsaKey();
    const byFioctl: FioSigningKey = {
      ...rsa,
      keyId: createHash('sha256').update(fioCanonicalJson(rsa.json)).digest('hex'),
    };
    const der = createPublicKey(edPem(keys.snapshot)).export({ format: 'der', type: 'spki' });
    const byOtaTuf: FioSigningKey = { ...keys.snapshot, keyId: createHash('sha256').update(der).digest('hex') };
    assert.notEqual(byFioctl.keyId, rsa.keyId);
    assert.notEqual(byOtaTuf.keyId, keys.snapshot.keyId);
    const forged = withRoot2((root) => {
      setFioRoleKeys(root, 'targets', [byFioctl], 1);
      setFioRoleKeys(root, 'snapshot', [byOtaTuf], 1);
    });
    forged.resign('targets.json', [byFioctl]);
    forged.resign('bundle-targets.json', [byFioctl]);
    forged.restampTargets(byOtaTuf, keys.timestamp);
    assert.equal(verify(forged).targets.length, 2);
  });

  describe('with a targets threshold of 2 (2.root.json adds a second targets key)', () => {
    const second = newFioKey();
    const thresholdStick = (signers: (first: FioSigningKey) => FioSigningKey[]): FioStick => {
      const forged = withRoot2((root) => setFioRoleKeys(root, 'targets', [keys.targets, second], 2));
      forged.resign('targets.json', signers(keys.targets));
      forged.restampTargets(keys.snapshot, keys.timestamp);
      forged.resign('bundle-targets.json', [keys.targets, second]);
      return forged;
    };

    test('both keys sign: accepted (the control case), and the device trusts root 2', () => {
      const verified = verify(thresholdStick((first) => [first, second]));
      assert.equal(verified.rootVersion, 2);
      assert.equal(JSON.parse(Buffer.from(verified.trustedAfter.root).toString()).signed.version, 2);
    });

    test('one key signs: below the threshold, 11', () => {
      assertRefused(
        thresholdStick((first) => [first]),
        11,
        /^tuf\/targets\.json: 1 valid signature\(s\) from targets keys, threshold is 2$/,
      );
    });

    test('one key signs twice: duplicate key ids count once, 11', () => {
      assertRefused(
        thresholdStick((first) => [first, first]),
        11,
        /^tuf\/targets\.json: 1 valid signature\(s\) from targets keys, threshold is 2$/,
      );
    });

    test('one key under two ids (its hex in upper and in lower case) signs as both: it counts once, 11', () => {
      const lower = keys.targets.json.keyval.public.toLowerCase();
      const twin: FioSigningKey = {
        ...keys.targets,
        keyId: fioKeyIdOf(lower),
        json: { keytype: 'ED25519', keyval: { public: lower } },
      };
      assert.notEqual(twin.keyId, keys.targets.keyId);
      const forged = withRoot2((root) => setFioRoleKeys(root, 'targets', [keys.targets, twin], 2));
      forged.resign('targets.json', [keys.targets, twin]);
      forged.restampTargets(keys.snapshot, keys.timestamp);
      assertRefused(forged, 11, /^tuf\/targets\.json: 1 valid signature\(s\) from targets keys, threshold is 2$/);
    });

    test('bundle-targets.json signed by one of the two keys: 11', () => {
      const forged = thresholdStick((first) => [first, second]);
      forged.resign('bundle-targets.json', [keys.targets]);
      assertRefused(
        forged,
        11,
        /^tuf\/bundle-targets\.json: 1 valid signature\(s\) from targets keys, threshold is 2$/,
      );
    });
  });

  describe('a production bundle signed one offline targets key at a time (fioctl sign-bundle)', () => {
    const second = newFioKey();
    const prodStick = (type: 'prod' | 'ci'): FioStick => {
      const forged = withRoot2((root) => setFioRoleKeys(root, 'targets', [keys.targets, second], 2));
      forged.resign('targets.json', [keys.targets, second]);
      forged.restampTargets(keys.snapshot, keys.timestamp);
      forged.resign('bundle-targets.json', [keys.targets], (signed) => {
        signed['x-fio-offline-bundle'].type = type;
        return signed;
      });
      return forged;
    };
    const verifyProd = (forged: FioStick, signatures: 'require' | 'count') =>
      verifyFoundriesStick({ trusted: trustFixture(), files: forged.files, now: NOW, signatures });

    test('counted, it verifies and says one signature is missing; required (as install does), it is 11', () => {
      const forged = prodStick('prod');
      assert.equal(verifyProd(forged, 'count').bundle.offlineSignaturesMissing, 1);
      assert.throws(
        () => verifyProd(forged, 'require'),
        (error) =>
          error instanceof FerryError &&
          OUTCOMES[error.outcome].exitCode === 11 &&
          /^tuf\/bundle-targets\.json: 1 valid signature\(s\) from targets keys, threshold is 2$/.test(error.message),
      );
      forged.resign('bundle-targets.json', [keys.targets, second]);
      assert.equal(verifyProd(forged, 'count').bundle.offlineSignaturesMissing, 0);
    });

    test('a ci bundle is never counted: short of its threshold, it is 11 either way', () => {
      assert.throws(
        () => verifyProd(prodStick('ci'), 'count'),
        (error) => error instanceof FerryError && OUTCOMES[error.outcome].exitCode === 11,
      );
    });
  });

  describe('RSA-PSS keys for a role', () => {
    for (const method of ['rsassa-pss-sha256', 'rsassa-pss']) {
      test(`targets and bundle-targets.json signed by an RSA key (method ${method}): accepted`, () => {
        const rsa = newFioRsaKey(2048, method);
        const forged = withRoot2((root) => setFioRoleKeys(root, 'targets', [rsa], 1));
        forged.resign('targets.json', [rsa]);
        forged.restampTargets(keys.snapshot, keys.timestamp);
        forged.resign('bundle-targets.json', [rsa]);
        assert.deepEqual(
          verify(forged).targets.map((target) => target.name),
          ['fio-hw-lmp-1', 'fio-hw-lmp-2'],
        );
      });
    }

    test('an RSA root key rotates the root, and a tampered RSA signature is refused: 11', () => {
      const rsa = newFioRsaKey();
      const rotated = withRoot2((root) => setFioRoleKeys(root, 'root', [rsa], 1), [keys.root, rsa]);
      assert.equal(verify(rotated).rootVersion, 2);
      flipSignature(rotated, '2.root.json');
      assertRefused(rotated, 11, /^tuf\/2\.root\.json: 0 valid signature\(s\) from root keys/);
    });

    test('an RSA key of a size aktualizr does not take (1024 bits): 16', () => {
      const small = newFioRsaKey(1024);
      const forged = withRoot2((root) => setFioRoleKeys(root, 'targets', [small], 1));
      assertRefused(forged, 16, /^tuf\/2\.root\.json: RSA key \w+ is not a 2048, 3072 or 4096-bit RSA public key$/);
    });
  });
});

describe('Foundries format, hostile: timestamp hashes and mix and match', () => {
  const stampWith = (mutate: (entry: Record<string, any>) => void): FioStick => {
    const forged = stick();
    forged.resign('timestamp.json', [keys.timestamp], (signed) => {
      mutate(signed.meta['snapshot.json']);
      return signed;
    });
    return forged;
  };

  test('a timestamp that names no hash of snapshot.json: 11', () => {
    assertRefused(
      stampWith((entry) => {
        entry.hashes = {};
      }),
      11,
      /^tuf\/timestamp\.json: hash check failed: it names no sha256 or sha512 of snapshot\.json$/,
    );
  });

  test('a timestamp that names only a hash aktualizr does not compute: 11', () => {
    assertRefused(
      stampWith((entry) => {
        entry.hashes = { md5: '00'.repeat(16) };
      }),
      11,
      /names no sha256 or sha512/,
    );
  });

  for (const algorithm of ['sha256', 'sha512']) {
    test(`a wrong ${algorithm} of snapshot.json: 11`, () => {
      assertRefused(
        stampWith((entry) => {
          entry.hashes[algorithm] = 'ab'.repeat(algorithm === 'sha256' ? 32 : 64);
        }),
        11,
        new RegExp(
          `^tuf/snapshot\\.json: hash check failed: its ${algorithm} is [0-9a-f]+, timestamp\\.json says (ab)+$`,
        ),
      );
    });
  }

  test('hashes in upper case, as fioctl may write them: accepted', () => {
    const forged = stampWith((entry) => {
      entry.hashes.sha256 = entry.hashes.sha256.toUpperCase();
    });
    assert.equal(verify(forged).targets.length, 2);
  });

  test('a wrong length of snapshot.json: 11', () => {
    assertRefused(
      stampWith((entry) => {
        entry.length -= 1;
      }),
      11,
      /^tuf\/snapshot\.json: hash check failed: 448 bytes, timestamp\.json says 447$/,
    );
  });

  test('a snapshot.json re-signed with other content under the old timestamp: 11', () => {
    const forged = stick();
    forged.resign('snapshot.json', [keys.snapshot], (signed) => ({ ...signed, expires: '2035-01-01T00:00:00Z' }));
    assertRefused(forged, 11, /^tuf\/snapshot\.json: hash check failed: its sha256 is/);
  });

  test('a timestamp that names another snapshot version than the one on the stick: 11', () => {
    const forged = stick();
    forged.restampSnapshot(keys.timestamp, (signed) => {
      signed.meta['snapshot.json'].version = 2;
      return signed;
    });
    assertRefused(
      forged,
      11,
      /^tuf\/snapshot\.json: version check failed: it is version 3, timestamp\.json names version 2$/,
    );
  });

  test('a snapshot that names another targets version than the one on the stick: 11', () => {
    const forged = stick();
    forged.resign('snapshot.json', [keys.snapshot], (signed) => {
      signed.meta['targets.json'] = { version: 2 };
      return signed;
    });
    forged.restampSnapshot(keys.timestamp);
    assertRefused(
      forged,
      11,
      /^tuf\/targets\.json: version check failed: it is version 3, snapshot\.json names version 2$/,
    );
  });

  test('a snapshot whose hash of targets.json does not match: 11', () => {
    const forged = stick();
    forged.resign('snapshot.json', [keys.snapshot], (signed) => {
      signed.meta['targets.json'].hashes.sha256 = 'cd'.repeat(32);
      return signed;
    });
    forged.restampSnapshot(keys.timestamp);
    assertRefused(forged, 11, /^tuf\/targets\.json: hash check failed: its sha256 is [0-9a-f]+, snapshot\.json says/);
  });
});

describe('Foundries format, hostile: expiry and the time floor', () => {
  for (const role of ['timestamp', 'snapshot', 'targets'] as const) {
    test(`expired ${role}.json: 12`, () => {
      const forged = stick();
      forged.resign(`${role}.json`, [keys[role]], (signed) => ({ ...signed, expires: PAST }));
      if (role === 'snapshot') forged.restampSnapshot(keys.timestamp);
      if (role === 'targets') {
        forged.restampTargets(keys.snapshot, keys.timestamp);
      }
      assertRefused(
        forged,
        12,
        new RegExp(`^tuf/${role}\\.json expired at ${PAST} \\(time used: the device clock 2026-11-30T00:00:00Z\\)$`),
      );
    });
  }

  test('expired bundle-targets.json: 12', () => {
    const forged = stick();
    forged.resign('bundle-targets.json', [keys.targets], (signed) => ({ ...signed, expires: PAST }));
    assertRefused(forged, 12, /^tuf\/bundle-targets\.json expired at 2026-11-29T00:00:00Z/);
  });

  test('an expired root at the end of the chain: 12', () => {
    const forged = withRoot2((root) => {
      root.expires = PAST;
    });
    assertRefused(forged, 12, /^tuf\/2\.root\.json expired at 2026-11-29T00:00:00Z/);
  });

  test('valid by the device clock, expired at the time floor: 12, and the reason names the floor', () => {
    const forged = stick();
    forged.resign('timestamp.json', [keys.timestamp], (signed) => ({ ...signed, expires: '2030-01-01T00:00:00Z' }));
    assert.equal(verify(forged).targets.length, 2);
    const floor = effectiveTime(NOW, new Date('2031-06-01T00:00:00Z'));
    assertRefused(
      forged,
      12,
      /^tuf\/timestamp\.json expired at 2030-01-01T00:00:00Z \(time used: 2031-06-01T00:00:00Z; device clock 2026-11-30T00:00:00Z is behind the trusted time floor/,
      trustFixture(),
      floor,
    );
  });

  for (const [label, expires] of [
    ['milliseconds', '2036-01-01T00:00:00.000Z'],
    ['a time zone offset', '2036-01-01T00:00:00+00:00'],
    ['no date at all', 'never'],
  ] as const) {
    test(`an expiry with ${label}, which aktualizr's TimeStamp does not take: 16`, () => {
      const forged = stick();
      forged.resign('timestamp.json', [keys.timestamp], (signed) => ({ ...signed, expires }));
      assertRefused(forged, 16, /^tuf\/timestamp\.json: expires .* is not YYYY-MM-DDTHH:MM:SSZ$/);
    });
  }
});

describe('Foundries format, hostile: rollback against the trusted state', () => {
  const trustedAt = (versions: { timestamp: number; snapshot: number; targets: number }) => ({
    ...trustFixture(),
    versions,
  });

  test('an older timestamp than the device trusts (signed, so an older stick): 18', () => {
    assertRefused(
      stick(),
      18,
      /^tuf\/timestamp\.json: this stick is older than the metadata this device trusts \(timestamp 3 < 5\): export a fresh stick$/,
      trustedAt({ timestamp: 5, snapshot: 3, targets: 3 }),
    );
  });

  test('an older timestamp whose signature does not verify is a forgery, not an older stick: 11', () => {
    const forged = stick();
    flipSignature(forged, 'timestamp.json');
    assertRefused(
      forged,
      11,
      /^tuf\/timestamp\.json: 0 valid signature/,
      trustedAt({ timestamp: 5, snapshot: 3, targets: 3 }),
    );
  });

  test('a snapshot version rollback under a newer timestamp: 11', () => {
    assertRefused(
      stick(),
      11,
      /^tuf\/snapshot\.json: version check failed: version 3 is less than the trusted version 4$/,
      trustedAt({ timestamp: 3, snapshot: 4, targets: 3 }),
    );
  });

  test('a targets version rollback under a newer snapshot: 11', () => {
    assertRefused(
      stick(),
      11,
      /^tuf\/targets\.json: version check failed: version 3 is less than the trusted version 4$/,
      trustedAt({ timestamp: 3, snapshot: 3, targets: 4 }),
    );
  });

  test('root rollback: a device that trusts root 2 refuses a stick signed by a key root 2 revoked, even with 1.root.json alone: 11', () => {
    const replacement = newFioKey();
    const rotated = withRoot2((root) => setFioRoleKeys(root, 'timestamp', [replacement], 1));
    rotated.resign('timestamp.json', [replacement]);
    const trusted = { root: verify(rotated).trustedAfter.root };
    // The fixture itself: only 1.root.json, and a timestamp signed by the key root 2 replaced.
    assertRefused(stick(), 11, /^tuf\/timestamp\.json: 0 valid signature\(s\) from timestamp keys/, trusted);
  });
});

describe('Foundries format, hostile: the root chain', () => {
  test('a valid chain 1 -> 2 -> 3 (each signed by the old and the new root key) is accepted; the device trusts 3', () => {
    const k2 = newFioKey();
    const k3 = newFioKey();
    const forged = stick();
    forged.addRoot([keys.root, k2], (root) => setFioRoleKeys(root, 'root', [k2], 1));
    forged.addRoot([k2, k3], (root) => setFioRoleKeys(root, 'root', [k3], 1));
    const verified = verify(forged);
    assert.equal(verified.rootVersion, 3);
    assert.ok(Buffer.from(verified.trustedAfter.root).equals(Buffer.from(forged.files.get('3.root.json')!)));
    // A device that trusts root 2 walks from its own version: it reads 3.root.json only.
    const fromTwo = { root: forged.files.get('2.root.json')! };
    forged.files.delete('1.root.json');
    assert.equal(verify(forged, fromTwo).rootVersion, 3);
  });

  test('a broken link: 3.root.json not signed by the keys of version 2: 11', () => {
    const k2 = newFioKey();
    const k3 = newFioKey();
    const forged = stick();
    forged.addRoot([keys.root, k2], (root) => setFioRoleKeys(root, 'root', [k2], 1));
    forged.addRoot([k3], (root) => setFioRoleKeys(root, 'root', [k3], 1));
    assertRefused(forged, 11, /^tuf\/3\.root\.json: 0 valid signature\(s\) from root keys, threshold is 1$/);
  });

  test('a new root not signed by the new key itself: 11', () => {
    const forged = withRoot2((root) => setFioRoleKeys(root, 'root', [newFioKey()], 1));
    assertRefused(forged, 11, /^tuf\/2\.root\.json: 0 valid signature\(s\) from root keys/);
  });

  test('a root filed as 2.root.json that says it is version 3: 11', () => {
    const forged = stick();
    forged.addRoot([keys.root], (root) => {
      root.version = 3;
    });
    assertRefused(forged, 11, /^tuf\/2\.root\.json: version check failed: it is version 3$/);
  });

  test('a key revoked by a new root can no longer sign targets: 11', () => {
    const forged = withRoot2((root) => setFioRoleKeys(root, 'targets', [newFioKey()], 1));
    assertRefused(forged, 11, /^tuf\/targets\.json: 0 valid signature\(s\) from targets keys, threshold is 1$/);
  });
});

describe('Foundries format, hostile: bundle-targets.json and the target', () => {
  test('bundle-targets.json unsigned: 11', () => {
    const forged = stick();
    forged.resign('bundle-targets.json', []);
    assertRefused(forged, 11, /^tuf\/bundle-targets\.json: 0 valid signature\(s\) from targets keys, threshold is 1$/);
  });

  test('bundle-targets.json signed by the timestamp key: 11', () => {
    const forged = stick();
    forged.resign('bundle-targets.json', [keys.timestamp]);
    assertRefused(forged, 11, /^tuf\/bundle-targets\.json: 0 valid signature/);
  });

  test('a prod bundle on a ci device: 15', () => {
    const forged = stick();
    forged.resign('bundle-targets.json', [keys.targets], (signed) => {
      signed['x-fio-offline-bundle'].type = 'prod';
      return signed;
    });
    assertRefused(
      forged,
      15,
      /^bundle-targets\.json: this is a "prod" bundle; this non-production device takes only "ci" bundles$/,
    );
  });

  test('bundle-targets.json naming a target that targets.json lacks: the name is unusable, and install answers 6', () => {
    const forged = stick();
    forged.resign('bundle-targets.json', [keys.targets], (signed) => {
      signed['x-fio-offline-bundle'].targets = ['fio-hw-lmp-9'];
      return signed;
    });
    const verified = verify(forged);
    assert.deepEqual(verified.unusable, ['fio-hw-lmp-9: not in targets.json']);
    assert.throws(
      () =>
        selectTarget({
          ...verified,
          facts: { hardwareId: 'fio-hw', tags: ['main'], production: false },
          commitsInBundle: COMMITS,
        }),
      (error) =>
        error instanceof FerryError &&
        OUTCOMES[error.outcome].exitCode === 6 &&
        /the bundle names no usable target: fio-hw-lmp-9: not in targets\.json/.test(error.message),
    );
  });

  test('the fixture on a device of another hardware id: 7, or asked for a target it lacks: 20', () => {
    const verified = verify(stick());
    const facts = { hardwareId: 'other-board', tags: ['main'], production: false };
    assert.throws(
      () => selectTarget({ ...verified, facts, commitsInBundle: COMMITS }),
      (error) => error instanceof FerryError && OUTCOMES[error.outcome].exitCode === 7,
    );
    assert.throws(
      () => selectTarget({ ...verified, facts, commitsInBundle: COMMITS, requestedName: 'fio-hw-lmp-3' }),
      (error) => error instanceof FerryError && OUTCOMES[error.outcome].exitCode === 20,
    );
  });

  test('x-fio-offline-bundle without a tag: 16', () => {
    const forged = stick();
    forged.resign('bundle-targets.json', [keys.targets], (signed) => {
      delete signed['x-fio-offline-bundle'].tag;
      return signed;
    });
    assertRefused(forged, 16, /^tuf\/bundle-targets\.json: x-fio-offline-bundle needs type/);
  });
});

describe('Foundries format, hostile: missing, malformed and mistyped files', () => {
  for (const file of ['timestamp.json', 'snapshot.json', 'targets.json']) {
    test(`${file} missing: 14`, () => {
      const forged = stick();
      forged.files.delete(file);
      assertRefused(forged, 14, new RegExp(`^tuf/${file.replace('.', '\\.')}: missing$`));
    });
  }

  test('bundle-targets.json missing (aklite only warns; ferry refuses, as for its own format): 14', () => {
    const forged = stick();
    forged.files.delete('bundle-targets.json');
    assertRefused(forged, 14, /^tuf\/bundle-targets\.json is missing from the bundle$/);
  });

  for (const file of ['timestamp.json', 'snapshot.json', 'targets.json', 'bundle-targets.json', '2.root.json']) {
    test(`${file} that is not JSON: 16`, () => {
      const forged = stick();
      forged.files.set(file, Buffer.from('{"signed": '));
      assertRefused(forged, 16, new RegExp(`^tuf/${file.replace('.', '\\.')}: .*JSON`));
    });
  }

  for (const [file, type, signer] of [
    ['timestamp.json', 'Snapshot', 'timestamp'],
    ['targets.json', 'targets', 'targets'],
    ['bundle-targets.json', 'bundle', 'targets'],
  ] as const) {
    test(`${file} with _type "${type}": 16`, () => {
      const forged = stick();
      forged.resign(file, [keys[signer]], (signed) => ({ ...signed, _type: type }));
      if (file === 'targets.json') {
        forged.restampTargets(keys.snapshot, keys.timestamp);
      }
      assertRefused(forged, 16, new RegExp(`^tuf/${file.replace('.', '\\.')}: _type is "${type}", expected "`));
    });
  }

  test('2.root.json with the lower-case _type of the ferry format: 16', () => {
    const forged = withRoot2((root) => {
      root._type = 'root';
    });
    assertRefused(forged, 16, /^tuf\/2\.root\.json: _type is "root", expected "Root"$/);
  });

  test('an oversized timestamp.json, refused before it is parsed: 16', () => {
    const forged = stick();
    forged.files.set('timestamp.json', Buffer.alloc(5 * 1024 * 1024, 0x20));
    assertRefused(forged, 16, /^tuf\/timestamp\.json: more than the \d+ bytes allowed$/);
  });

  test('signatures that are not a list: 16', () => {
    const forged = stick();
    const document = forged.json('targets.json');
    document.signatures = {};
    forged.write('targets.json', document);
    forged.restampTargets(keys.snapshot, keys.timestamp);
    assertRefused(forged, 16, /^tuf\/targets\.json: "signatures" is not a list$/);
  });
});

describe('Foundries format, hostile: any flipped bit', () => {
  const files = ['timestamp.json', 'snapshot.json', 'targets.json', 'bundle-targets.json'];

  test('a flipped bit anywhere in timestamp, snapshot, targets or bundle-targets.json is refused with a code, never taken', () => {
    let tried = 0;
    for (const file of files) {
      const original = Buffer.from(fixture.files.get(file)!);
      // Every third byte, a different bit each time: each file's every field and every signature is hit.
      for (let offset = 0; offset < original.length; offset += 3) {
        const forged = stick();
        const bytes = Buffer.from(original);
        bytes[offset] = bytes[offset]! ^ (1 << (offset % 8));
        forged.files.set(file, bytes);
        assert.throws(
          () => verify(forged),
          (error) => error instanceof FerryError && !error.message.includes('\n'),
          `${file}, byte ${offset}`,
        );
        tried += 1;
      }
    }
    assert.ok(tried > 700);
  });

  test('the last base64 character of a signature respelled with other spare bits: refused, 11', () => {
    const forged = stick();
    const document = forged.json('targets.json');
    const sig: string = document.signatures[0].sig;
    // "...Cg==": of the last character before the padding only its top two bits are the signature's.
    const last = sig.length - 3;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const spare = alphabet[alphabet.indexOf(sig[last]!) ^ 1]!;
    const respelled = sig.slice(0, last) + spare + sig.slice(last + 1);
    assert.ok(Buffer.from(respelled, 'base64').equals(Buffer.from(sig, 'base64')));
    document.signatures[0].sig = respelled;
    forged.write('targets.json', document);
    forged.restampTargets(keys.snapshot, keys.timestamp);
    assertRefused(forged, 11, /^tuf\/targets\.json: 0 valid signature/);
  });

  test("the stick's own 1.root.json is not read by a device that trusts root 1: a damaged copy changes nothing", () => {
    const forged = stick();
    forged.files.set('1.root.json', Buffer.from('not json'));
    assert.equal(verify(forged).rootVersion, 1);
  });
});
