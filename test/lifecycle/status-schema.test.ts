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

  const v1 = { name: 'os-1', version: '1', commit: '1'.repeat(64), apps: {} };
  const v2 = { name: 'os-2', version: '2', commit: '2'.repeat(64), apps: {} };
  const update = { target: v2, previous: v1, installedAt: '2026-11-23T10:00:00Z', completion: 'reboot' };
  const window = { since: '2026-11-23T10:00:00Z', until: '2026-11-23T10:02:00Z', boot: 'b1' };
  const returning = {
    phase: 'returning',
    target: v1,
    previous: v2,
    from: v2,
    installedAt: '2026-11-23T10:00:00Z',
    completion: 'reboot',
    rootfsChanged: true,
    window: null,
  };
  const phases: Array<[string, Record<string, unknown>]> = [
    ['deploying', { ...update, phase: 'deploying', rootfsChanged: true, repair: false }],
    ['staged', { ...update, phase: 'staged', rootfsChanged: true, repair: true }],
    ['testing', { ...update, phase: 'testing', rootfsChanged: false, repair: false, window }],
    ['returning', returning],
    ['returning, its apps in their window', { ...returning, window }],
  ];
  for (const [name, pending] of phases) {
    test(`accepts a pending update in phase ${name}`, () =>
      assert.doesNotThrow(() => assertStatusSchema({ ...minimal, pending })));
  }

  const broken: Array<[string, Record<string, unknown>]> = [
    [
      'a pending update still deploying with a testing window',
      { ...minimal, pending: { ...update, phase: 'deploying', rootfsChanged: true, repair: false, window } },
    ],
    ['a way back that is a repair too', { ...minimal, pending: { ...returning, repair: true } }],
    [
      'a testing phase without its window',
      { ...minimal, pending: { ...update, phase: 'testing', rootfsChanged: true, repair: false } },
    ],
    [
      'a pending update of the older shape (its phase in optional fields)',
      { ...minimal, pending: { ...update, rootfsChanged: true, stage: 'deploying' } },
    ],
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
