import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Root } from '@tufjs/models';
import { FerryError } from '../../src/errors.js';
import { signBundleTargets, verifyBundleTargets, type BundleTargetsSigned } from '../../src/tuf/bundle-targets.js';
import { generateSigningKey, type SigningKey } from '../../src/tuf/keys.js';

function rootWith(targetsKeys: SigningKey[], threshold: number, other: SigningKey): Root {
  const all = [...targetsKeys, other];
  return Root.fromJSON({
    _type: 'root',
    spec_version: '1.0.31',
    version: 1,
    expires: '2030-01-01T00:00:00Z',
    consistent_snapshot: false,
    keys: Object.fromEntries(all.map((key) => [key.keyId, key.publicKey])),
    roles: {
      root: { keyids: [other.keyId], threshold: 1 },
      targets: { keyids: targetsKeys.map((key) => key.keyId), threshold },
      snapshot: { keyids: [other.keyId], threshold: 1 },
      timestamp: { keyids: [other.keyId], threshold: 1 },
    },
  } as never);
}

const signed = (overrides: Partial<BundleTargetsSigned> = {}): BundleTargetsSigned => ({
  _type: 'bundle',
  expires: '2030-01-01T00:00:00Z',
  version: 1,
  'x-ferry-bundle': { type: 'ci', tag: 'main', targets: ['sim-lmp-2'] },
  ...overrides,
});

const now = new Date('2026-11-23T00:00:00Z');
const [a, b, other] = [generateSigningKey().key, generateSigningKey().key, generateSigningKey().key] as [
  SigningKey,
  SigningKey,
  SigningKey,
];

function outcomeOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof FerryError, String(error));
    return error.outcome;
  }
  return 'accepted';
}

describe('bundle-targets.json', () => {
  test('signed by the targets keys up to the threshold: accepted, with its type, tag and targets', () => {
    const bundle = verifyBundleTargets(signBundleTargets(signed(), [a, b]), rootWith([a, b], 2, other), now);
    assert.deepEqual([bundle.type, bundle.tag, bundle.targets], ['ci', 'main', ['sim-lmp-2']]);
  });

  const cases: Array<[string, () => unknown, string]> = [
    ['below the threshold', () => signBundleTargets(signed(), [a]), 'SECURITY_ERROR'],
    [
      'one key signing twice does not reach a threshold of two',
      () => {
        const document = signBundleTargets(signed(), [a]) as { signatures: unknown[] };
        return { ...document, signatures: [...document.signatures, ...document.signatures] };
      },
      'SECURITY_ERROR',
    ],
    ['signed by a key that is not a targets key', () => signBundleTargets(signed(), [other, a]), 'SECURITY_ERROR'],
    [
      'content changed after signing',
      () => {
        const document = signBundleTargets(signed(), [a, b]) as { signed: BundleTargetsSigned };
        return {
          ...document,
          signed: { ...document.signed, 'x-ferry-bundle': { type: 'ci', tag: 'main', targets: ['evil'] } },
        };
      },
      'SECURITY_ERROR',
    ],
    ['expired', () => signBundleTargets(signed({ expires: '2026-01-01T00:00:00Z' }), [a, b]), 'METADATA_EXPIRED'],
    ['a malformed expiry', () => signBundleTargets(signed({ expires: 'not-a-date' }), [a, b]), 'METADATA_MALFORMED'],
    [
      'the wrong _type',
      () => signBundleTargets({ ...signed(), _type: 'targets' as never }, [a, b]),
      'METADATA_MALFORMED',
    ],
    ['no signatures list', () => ({ signed: signed() }), 'METADATA_MALFORMED'],
  ];
  for (const [name, make, outcome] of cases) {
    test(`${name}: ${outcome}`, () => {
      assert.equal(
        outcomeOf(() => verifyBundleTargets(make(), rootWith([a, b], 2, other), now)),
        outcome,
      );
    });
  }
});

describe('bundle-targets.json: a rootfs carried as a static delta', () => {
  const commit = 'c'.repeat(64);
  const base = { target: 'sim-lmp-1', commit: 'b'.repeat(64) };
  const entry = { form: 'static-delta', file: `rootfs/${commit}.delta`, length: 1234, sha256: 'd'.repeat(64) };
  const withRootfs = (rootfs: unknown, extra: Record<string, unknown> = {}) =>
    signBundleTargets(
      signed({
        'x-ferry-bundle': {
          type: 'ci',
          tag: 'main',
          targets: ['sim-lmp-2'],
          ...extra,
          ...(rootfs === undefined ? {} : { rootfs }),
        } as never,
      }),
      [a, b],
    );
  const root = rootWith([a, b], 2, other);

  test('a well-formed entry is exposed as signed, with its base commit for a delta', () => {
    assert.deepEqual(verifyBundleTargets(withRootfs(entry), root, now).rootfs, entry);
    const delta = { ...entry, from: base.commit };
    assert.deepEqual(verifyBundleTargets(withRootfs(delta, { base }), root, now).rootfs, delta);
    assert.equal(verifyBundleTargets(withRootfs(undefined), root, now).rootfs, undefined);
  });

  const malformed: Array<[string, unknown, Record<string, unknown>?]> = [
    ['another form', { ...entry, form: 'ostree-repo' }],
    ['a file outside rootfs/', { ...entry, file: `../${commit}.delta` }],
    ['a file not named after a commit', { ...entry, file: 'rootfs/x.delta' }],
    ['a negative length', { ...entry, length: -1 }],
    ['a sha256 that is not 64 hex', { ...entry, sha256: 'abc' }],
    ['a from without a signed base', { ...entry, from: base.commit }],
    ['a from that is not the base', { ...entry, from: 'e'.repeat(64) }, { base }],
    ['a delta bundle without its from', entry, { base }],
    ['more than one target', entry, { targets: ['sim-lmp-2', 'sim-lmp-3'] }],
  ];
  for (const [name, rootfs, extra] of malformed) {
    test(`${name}: 16`, () => {
      assert.equal(
        outcomeOf(() => verifyBundleTargets(withRootfs(rootfs, extra), root, now)),
        'METADATA_MALFORMED',
      );
    });
  }
});
