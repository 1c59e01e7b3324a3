import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Metadata, MetadataKind, Root, Signature, Targets } from '@tufjs/models';
import { generateSigningKey, type SigningKey } from '../../src/tuf/keys.js';
import { unpatched } from '../../src/tuf/models-patch.js';
import { signRole } from '../../src/tuf/sign-metadata.js';

/** The one-pass targets map gives what the models' own code gives: same objects, same JSON, same refusals. */

const entry = (i: number) => ({
  length: 0,
  hashes: { sha256: i.toString(16).padStart(64, '0') },
  custom: { version: String(i), hardwareIds: ['board'], tags: ['main'] },
});

function document(count: number): Record<string, unknown> {
  const targets: Record<string, unknown> = {};
  for (let i = 0; i < count; i++) targets[`os-${i}`] = entry(i);
  return {
    signed: {
      _type: 'targets',
      spec_version: '1.0.31',
      version: 3,
      expires: '2030-01-01T00:00:00Z',
      targets,
      'x-extra': { kept: true },
    },
    signatures: [],
  };
}

test('a targets document reads and writes back unchanged, unknown fields and all, at 20,000 targets', () => {
  const input = document(20_000);
  const metadata = Metadata.fromJSON(MetadataKind.Targets, input as never) as Metadata<Targets>;
  assert.equal(Object.keys(metadata.signed.targets).length, 20_000);
  assert.equal(metadata.signed.targets['os-7']!.custom['version'], '7');
  assert.deepEqual(metadata.toJSON(), input);
  assert.deepEqual(Object.keys((metadata.toJSON().signed as { targets: object }).targets).slice(0, 3), [
    'os-0',
    'os-1',
    'os-2',
  ]);
});

test('an empty or absent map, and a map that is not one, are handled as the models handle them', () => {
  const empty = Metadata.fromJSON(MetadataKind.Targets, document(0) as never) as Metadata<Targets>;
  assert.deepEqual(empty.signed.targets, {});
  const absent = document(0);
  delete (absent['signed'] as Record<string, unknown>)['targets'];
  assert.deepEqual((Metadata.fromJSON(MetadataKind.Targets, absent as never) as Metadata<Targets>).signed.targets, {});
  const wrong = document(0);
  (wrong['signed'] as Record<string, unknown>)['targets'] = { a: 'not an object' };
  assert.throws(() => Metadata.fromJSON(MetadataKind.Targets, wrong as never), /targets must be an object/);
});

describe('one canonical form per delegation check', () => {
  const [a, b, c, other] = [1, 2, 3, 4].map(() => generateSigningKey().key) as [
    SigningKey,
    SigningKey,
    SigningKey,
    SigningKey,
  ];
  /** A root whose targets role is `keys` with `threshold`; `c` is in its keys but not in the targets role. */
  const rootWith = (keys: SigningKey[], threshold: number): Metadata<Root> =>
    Metadata.fromJSON(MetadataKind.Root, {
      signed: {
        _type: 'root',
        spec_version: '1.0.31',
        version: 1,
        expires: '2030-01-01T00:00:00Z',
        consistent_snapshot: false,
        keys: Object.fromEntries([a, b, c, other].map((key) => [key.keyId, key.publicKey])),
        roles: {
          root: { keyids: [other.keyId], threshold: 1 },
          targets: { keyids: keys.map((key) => key.keyId), threshold },
          snapshot: { keyids: [other.keyId], threshold: 1 },
          timestamp: { keyids: [other.keyId], threshold: 1 },
        },
      },
      signatures: [],
    } as never) as Metadata<Root>;
  const signedBy = (keys: SigningKey[], change: (signed: Record<string, unknown>) => void = () => {}) => {
    const signed = document(200)['signed'] as Record<string, unknown>;
    const json = signRole('targets', signed, keys) as { signed: Record<string, unknown>; signatures: unknown[] };
    change(json.signed);
    return Metadata.fromJSON(MetadataKind.Targets, json as never) as Metadata<Targets>;
  };
  const flipped = (metadata: Metadata<Targets>, key: SigningKey) => {
    const { sig } = metadata.signatures[key.keyId]!;
    metadata.signatures[key.keyId] = new Signature({
      keyID: key.keyId,
      sig: `${sig[0] === '0' ? '1' : '0'}${sig.slice(1)}`,
    });
    return metadata;
  };
  const answer = (run: () => void): string => {
    try {
      run();
      return 'verified';
    } catch (error) {
      return `${(error as Error).constructor.name}: ${(error as Error).message}`;
    }
  };

  const cases: Array<[string, () => Metadata<Root>, () => Metadata<Targets>]> = [
    ['both keys of a threshold of 2', () => rootWith([a, b], 2), () => signedBy([a, b])],
    ['one key of a threshold of 2', () => rootWith([a, b], 2), () => signedBy([a])],
    ['a key the role does not list', () => rootWith([a, b], 2), () => signedBy([a, c])],
    ['a flipped signature of a threshold of 2', () => rootWith([a, b], 2), () => flipped(signedBy([a, b]), b)],
    ['a flipped signature of a threshold of 1', () => rootWith([a, b], 1), () => flipped(signedBy([a, b]), a)],
    [
      'a target hash changed after signing',
      () => rootWith([a, b], 2),
      () =>
        signedBy([a, b], (signed) => {
          (signed['targets'] as Record<string, { hashes: { sha256: string } }>)['os-5']!.hashes.sha256 = '0'.repeat(64);
        }),
    ],
    ['no signature at all', () => rootWith([a, b], 1), () => signedBy([])],
  ];
  for (const [label, root, targets] of cases) {
    test(`${label}: the same answer as the models' own verifyDelegate`, () => {
      const theirs = answer(() => unpatched.verifyDelegate.call(root(), 'targets', targets()));
      const ours = answer(() => root().verifyDelegate('targets', targets()));
      assert.equal(ours, theirs);
      assert.equal(ours === 'verified', label === 'both keys of a threshold of 2' || label.endsWith('threshold of 1'));
    });
  }

  test('targets.json signed by two keys is turned into canonical JSON once, not once per key', () => {
    const root = rootWith([a, b], 2);
    const metadata = signedBy([a, b]);
    const toJSON = Targets.prototype.toJSON;
    let calls = 0;
    Targets.prototype.toJSON = function counted(this: Targets) {
      calls++;
      return toJSON.call(this);
    };
    try {
      root.verifyDelegate('targets', metadata);
    } finally {
      Targets.prototype.toJSON = toJSON;
    }
    assert.equal(calls, 1);
  });
});
