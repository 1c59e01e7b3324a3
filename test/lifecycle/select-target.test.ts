import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FerryError } from '../../src/errors.js';
import { selectTarget, type SelectionInput } from '../../src/lifecycle/select-target.js';
import type { Target } from '../../src/tuf/target.js';

const commit = (n: number): string => n.toString(16).padStart(64, '0');
const target = (name: string, version: string, n: number, hardwareIds = ['board'], tags = ['main']): Target => ({
  name,
  version,
  commit: commit(n),
  hardwareIds,
  tags,
  apps: {},
});

const t1 = target('os-1', '1', 1);
const t2 = target('os-2', '2', 2);
const t10 = target('os-10', '10', 10);
const otherBoard = target('other-5', '5', 5, ['other']);
const devel = target('os-7', '7', 7, ['board'], ['devel']);

function input(overrides: Partial<SelectionInput> = {}): SelectionInput {
  return {
    bundle: {
      type: 'ci',
      tag: 'main',
      tags: ['main'],
      offlineSignaturesMissing: 0,
      targets: ['os-1', 'os-2', 'os-10'],
      expires: new Date('2030-01-01'),
      version: 1,
    },
    targets: [t1, t2, t10],
    unusable: [],
    facts: { hardwareId: 'board', tags: ['main'], production: false },
    commitsInBundle: new Set([commit(1), commit(2), commit(10)]),
    ...overrides,
  };
}

function outcome(overrides: Partial<SelectionInput>): string {
  try {
    return `selected ${selectTarget(input(overrides)).name}`;
  } catch (error) {
    assert.ok(error instanceof FerryError);
    return error.outcome;
  }
}

describe('target selection', () => {
  const cases: Array<[string, Partial<SelectionInput>, string]> = [
    ['the highest version wins, compared as numbers (10 > 2)', {}, 'selected os-10'],
    [
      'a target whose content is missing is passed over',
      { commitsInBundle: new Set([commit(1), commit(2)]) },
      'selected os-2',
    ],
    ['no content for any match', { commitsInBundle: new Set() }, 'CONTENT_MISSING'],
    ['--target picks that one', { requestedName: 'os-1' }, 'selected os-1'],
    ['--target not in the bundle', { requestedName: 'os-99' }, 'TARGET_NOT_IN_BUNDLE'],
    ['wrong hardware id', { targets: [otherBoard] }, 'WRONG_HARDWARE_ID'],
    ['no target with the device tag', { targets: [devel] }, 'NO_MATCHING_TARGET'],
    [
      'a device without tags takes any tag',
      {
        targets: [devel],
        facts: { hardwareId: 'board', tags: [], production: false },
        commitsInBundle: new Set([commit(7)]),
      },
      'selected os-7',
    ],
    [
      'a bundle for another tag',
      { facts: { hardwareId: 'board', tags: ['devel'], production: false } },
      'BUNDLE_METADATA_INVALID',
    ],
    [
      'a ci bundle on a production device',
      { facts: { hardwareId: 'board', tags: ['main'], production: true } },
      'BUNDLE_METADATA_INVALID',
    ],
    [
      'a prod bundle on a ci device',
      {
        bundle: {
          type: 'prod',
          tag: 'main',
          tags: ['main'],
          offlineSignaturesMissing: 0,
          targets: ['os-1'],
          expires: new Date('2030-01-01'),
          version: 1,
        },
      },
      'BUNDLE_METADATA_INVALID',
    ],
    ['the bundle names nothing usable', { targets: [], unusable: ['os-3: not in targets.json'] }, 'NO_MATCHING_TARGET'],
    [
      'a bundle for two tags, on a device following the second: its target with that tag',
      {
        bundle: {
          type: 'ci',
          tag: 'main',
          tags: ['main', 'devel'],
          offlineSignaturesMissing: 0,
          targets: ['os-1', 'os-7'],
          expires: new Date('2030-01-01'),
          version: 1,
        },
        targets: [t1, devel],
        facts: { hardwareId: 'board', tags: ['devel'], production: false },
        commitsInBundle: new Set([commit(1), commit(7)]),
      },
      'selected os-7',
    ],
  ];
  for (const [name, overrides, expected] of cases) {
    test(`${name}: ${expected}`, () => assert.equal(outcome(overrides), expected));
  }
});
