import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { expiresInDays, formatExpires, parseExpires } from '../../src/tuf/expires.js';

describe('TUF expiry dates', () => {
  const cases: Array<[unknown, boolean]> = [
    ['2030-01-02T03:04:05Z', true],
    ['2030-01-02T03:04:05.123Z', false],
    ['2030-01-02T03:04:05+00:00', false],
    ['2030-01-02', false],
    ['not-a-date', false],
    ['2026-02-31T00:00:00Z', false],
    ['', false],
    [1893456000, false],
    [null, false],
  ];
  for (const [value, valid] of cases) {
    test(`${JSON.stringify(value)} is ${valid ? 'accepted' : 'refused'}`, () => {
      const parsed = parseExpires(value);
      if (valid) assert.equal(parsed?.toISOString(), new Date(value as string).toISOString());
      else assert.equal(parsed, undefined);
    });
  }

  test('formatExpires drops milliseconds, and expiresInDays counts whole days from now', () => {
    const now = new Date('2026-11-23T10:20:30.456Z');
    assert.equal(formatExpires(now), '2026-11-23T10:20:30Z');
    assert.equal(expiresInDays(now, 30), '2026-12-23T10:20:30Z');
  });
});
