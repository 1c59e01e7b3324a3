import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { assertStatusSchema } from '../support/status-schema.js';

const minimal = {
  outcome: 'OK',
  exitCode: 0,
  meaning: 'done',
  next: 'nothing',
  message: 'booted: x',
  state: 'DONE',
  reason: 'ok',
  progress: null,
  log: [],
  inconsistent: null,
  booted: { commit: 'a'.repeat(64), target: 'x-1' },
  current: null,
  pending: null,
  rebootPending: false,
  rollback: null,
  failedTargets: [],
  lastError: null,
  history: [],
  timeFloor: null,
};

describe('schemas/status.schema.json', () => {
  test('accepts a well-formed status', () => assert.doesNotThrow(() => assertStatusSchema(minimal)));
  test('accepts a time floor', () =>
    assert.doesNotThrow(() => assertStatusSchema({ ...minimal, timeFloor: '2026-11-23T10:00:00Z' })));

  const broken: Array<[string, Record<string, unknown>]> = [
    ['an unknown state', { ...minimal, state: 'SLEEPING' }],
    ['a missing field', Object.fromEntries(Object.entries(minimal).filter(([key]) => key !== 'history'))],
    ['a progress with another unit', { ...minimal, progress: { unit: 'bytes', value: 3 } }],
    ['a commit that is not a checksum', { ...minimal, booted: { commit: 'abc', target: null } }],
    ['an extra field', { ...minimal, surprise: true }],
    ['a time floor with milliseconds', { ...minimal, timeFloor: '2026-11-23T10:00:00.000Z' }],
  ];
  for (const [name, document] of broken) {
    test(`refuses ${name}`, () => assert.throws(() => assertStatusSchema(document), /does not match/));
  }
});
