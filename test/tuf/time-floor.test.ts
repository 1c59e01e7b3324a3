import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Root } from '@tufjs/models';
import { FerryError } from '../../src/errors.js';
import { signBundleTargets, verifyBundleTargets, type BundleTargetsSigned } from '../../src/tuf/bundle-targets.js';
import { generateSigningKey } from '../../src/tuf/keys.js';
import {
  assertNotExpired,
  describeTime,
  effectiveTime,
  formatTimeFloor,
  parseTimeFloor,
  raiseFloor,
} from '../../src/tuf/time-floor.js';

const date = (text: string) => new Date(text);
const CLOCK_1970 = date('1970-01-02T00:00:00Z');
const FLOOR = date('2026-11-23T10:00:00Z');
const FAR_FUTURE = date('2100-01-01T00:00:00Z');

function refusal(run: () => unknown): FerryError {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof FerryError, String(error));
    return error;
  }
  assert.fail('expected a refusal');
}

describe('time floor: the effective time', () => {
  test('a clock behind the floor (1970 after a power cut): the floor is used', () => {
    const time = effectiveTime(CLOCK_1970, FLOOR);
    assert.equal(time.time.toISOString(), FLOOR.toISOString());
    assert.equal(time.fromFloor, true);
  });

  test('a clock ahead of the floor: the clock is used', () => {
    const time = effectiveTime(FAR_FUTURE, FLOOR);
    assert.equal(time.time.toISOString(), FAR_FUTURE.toISOString());
    assert.equal(time.fromFloor, false);
  });

  test('no floor yet: the clock is used, whatever it reads', () => {
    const time = effectiveTime(CLOCK_1970, undefined);
    assert.equal(time.time.toISOString(), CLOCK_1970.toISOString());
    assert.equal(time.fromFloor, false);
  });

  test('a clock exactly at the floor: the clock is used (the two agree)', () => {
    const time = effectiveTime(new Date(FLOOR.getTime()), FLOOR);
    assert.equal(time.fromFloor, false);
    assert.equal(time.time.getTime(), FLOOR.getTime());
  });
});

describe('time floor: raising it', () => {
  test('the first verified signing time becomes the floor', () => {
    assert.equal(raiseFloor(undefined, FLOOR)?.toISOString(), FLOOR.toISOString());
  });

  test('a later signing time raises it; an earlier one leaves it where it was', () => {
    const later = date('2026-12-01T00:00:00Z');
    const earlier = date('2026-01-01T00:00:00Z');
    assert.equal(raiseFloor(FLOOR, later)?.toISOString(), later.toISOString());
    assert.equal(raiseFloor(FLOOR, earlier)?.toISOString(), FLOOR.toISOString());
  });

  test('a bundle without a signing time (made before signedAt existed) contributes nothing', () => {
    assert.equal(raiseFloor(FLOOR, undefined)?.toISOString(), FLOOR.toISOString());
    assert.equal(raiseFloor(undefined, undefined), undefined);
  });

  test('over any sequence of signing times the floor never goes down and ends at the newest one', () => {
    let seed = 7;
    const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    for (let round = 0; round < 50; round++) {
      let floor: Date | undefined;
      let newest = -Infinity;
      for (let step = 0; step < 20; step++) {
        const signedAt = random() < 0.2 ? undefined : new Date(Math.floor((random() * 4e12) / 1000) * 1000);
        const before = floor?.getTime() ?? -Infinity;
        floor = raiseFloor(floor, signedAt);
        if (signedAt !== undefined) newest = Math.max(newest, signedAt.getTime());
        assert.ok((floor?.getTime() ?? -Infinity) >= before, 'the floor went down');
      }
      assert.equal(floor?.getTime() ?? -Infinity, newest);
    }
  });
});

describe('time floor: expiry against the effective time', () => {
  const expires = date('2026-06-01T00:00:00Z');

  test('metadata that expired before the floor is refused even with the clock in 1970, naming both times', () => {
    const error = refusal(() => assertNotExpired('tuf/targets.json', expires, effectiveTime(CLOCK_1970, FLOOR)));
    assert.equal(error.outcome, 'METADATA_EXPIRED');
    assert.equal(
      error.message,
      'tuf/targets.json expired at 2026-06-01T00:00:00Z (time used: 2026-11-23T10:00:00Z; device clock ' +
        '1970-01-02T00:00:00Z is behind the trusted time floor 2026-11-23T10:00:00Z)',
    );
    assert.doesNotMatch(error.message, /\n/);
  });

  test('the same metadata with the clock in 1970 and no floor passes (what tuf-js alone would do)', () => {
    assert.doesNotThrow(() => assertNotExpired('tuf/targets.json', expires, effectiveTime(CLOCK_1970, undefined)));
  });

  test('metadata still valid at the floor passes with the clock in 1970', () => {
    const later = date('2027-01-01T00:00:00Z');
    assert.doesNotThrow(() => assertNotExpired('tuf/targets.json', later, effectiveTime(CLOCK_1970, FLOOR)));
  });

  test('a far-future clock is used as it is: refused, and the message names the clock', () => {
    const error = refusal(() =>
      assertNotExpired('tuf/timestamp.json', date('2027-01-01T00:00:00Z'), effectiveTime(FAR_FUTURE, FLOOR)),
    );
    assert.equal(error.outcome, 'METADATA_EXPIRED');
    assert.match(error.message, /time used: the device clock 2100-01-01T00:00:00Z\)$/);
  });

  test('expired means now >= expires, as in tuf-js: at the very second of expiry it is refused', () => {
    assert.equal(
      refusal(() => assertNotExpired('x', expires, effectiveTime(CLOCK_1970, expires))).outcome,
      'METADATA_EXPIRED',
    );
    const justBefore = new Date(expires.getTime() - 1000);
    assert.doesNotThrow(() => assertNotExpired('x', expires, effectiveTime(CLOCK_1970, justBefore)));
  });

  test('describeTime drops milliseconds from the clock', () => {
    assert.equal(
      describeTime(effectiveTime(date('2030-01-01T00:00:00.789Z'), undefined)),
      'time used: the device clock 2030-01-01T00:00:00Z',
    );
  });
});

describe('time floor: the stored form', () => {
  test('one date and a newline, read back to the same second', () => {
    assert.equal(formatTimeFloor(FLOOR), '2026-11-23T10:00:00Z\n');
    assert.equal(parseTimeFloor(formatTimeFloor(FLOOR))?.toISOString(), FLOOR.toISOString());
  });

  for (const text of ['', '\n', 'garbage', '2026-11-23T10:00:00.000Z\n', '2026-02-31T00:00:00Z\n', '2026-11-23\n']) {
    test(`${JSON.stringify(text)} is no floor`, () => {
      assert.equal(parseTimeFloor(text), undefined);
    });
  }
});

describe('bundle-targets.json: signedAt', () => {
  const key = generateSigningKey().key;
  const other = generateSigningKey().key;
  const root = Root.fromJSON({
    _type: 'root',
    spec_version: '1.0.31',
    version: 1,
    expires: '2030-01-01T00:00:00Z',
    consistent_snapshot: false,
    keys: { [key.keyId]: key.publicKey, [other.keyId]: other.publicKey },
    roles: {
      root: { keyids: [other.keyId], threshold: 1 },
      targets: { keyids: [key.keyId], threshold: 1 },
      snapshot: { keyids: [other.keyId], threshold: 1 },
      timestamp: { keyids: [other.keyId], threshold: 1 },
    },
  } as never);
  const bundle = (signedAt?: unknown, expires = '2027-01-01T00:00:00Z') =>
    signBundleTargets(
      {
        _type: 'bundle',
        expires,
        version: 1,
        'x-ferry-bundle': {
          type: 'ci',
          tag: 'main',
          targets: ['sim-lmp-2'],
          ...(signedAt === undefined ? {} : { signedAt }),
        },
      } as BundleTargetsSigned,
      [key],
    );
  const now = date('2026-11-23T00:00:00Z');

  test('a signed signedAt is read as a date', () => {
    const verified = verifyBundleTargets(bundle('2026-11-20T08:09:10Z'), root, now);
    assert.equal(verified.signedAt?.toISOString(), '2026-11-20T08:09:10.000Z');
  });

  test('an older bundle without signedAt is still accepted, with no signing time', () => {
    const verified = verifyBundleTargets(bundle(), root, now);
    assert.equal(verified.signedAt, undefined);
    assert.deepEqual(verified.targets, ['sim-lmp-2']);
  });

  for (const [label, value] of [
    ['milliseconds', '2026-11-20T08:09:10.123Z'],
    ['a time zone offset', '2026-11-20T08:09:10+00:00'],
    ['a number', 1_795_000_000],
    ['null', null],
    ['an impossible day', '2026-02-31T00:00:00Z'],
  ] as const) {
    test(`signedAt with ${label}: METADATA_MALFORMED`, () => {
      const error = refusal(() => verifyBundleTargets(bundle(value), root, now));
      assert.equal(error.outcome, 'METADATA_MALFORMED');
      assert.match(error.message, /bundle-targets\.json: x-ferry-bundle\.signedAt .* is not YYYY-MM-DDTHH:MM:SSZ/);
    });
  }

  test('signedAt later than the expiry: METADATA_MALFORMED (it would raise the floor past the bundle itself)', () => {
    const error = refusal(() => verifyBundleTargets(bundle('2028-01-01T00:00:00Z'), root, now));
    assert.equal(error.outcome, 'METADATA_MALFORMED');
    assert.match(error.message, /later than expires/);
  });

  test('bundle-targets.json is checked against the effective time: expired at the floor, with the clock in 1970', () => {
    const document = bundle('2026-01-01T00:00:00Z');
    assert.doesNotThrow(() => verifyBundleTargets(document, root, effectiveTime(CLOCK_1970, undefined)));
    const error = refusal(() =>
      verifyBundleTargets(document, root, effectiveTime(CLOCK_1970, date('2027-02-01T00:00:00Z'))),
    );
    assert.equal(error.outcome, 'METADATA_EXPIRED');
    assert.match(
      error.message,
      /^bundle-targets\.json expired at 2027-01-01T00:00:00Z .*behind the trusted time floor/,
    );
  });
});
