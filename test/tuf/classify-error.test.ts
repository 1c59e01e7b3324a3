import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as modelErrors from '@tufjs/models/dist/error.js';
import {
  DownloadHTTPError,
  DownloadLengthMismatchError,
  EqualVersionError,
  ExpiredMetadataError,
  RepositoryError,
  RuntimeError,
} from 'tuf-js/dist/error.js';
import { FerryError } from '../../src/errors.js';
import { classifyTufError } from '../../src/tuf/classify-error.js';

/**
 * tuf-js's failures, mapped to outcomes by their class where tuf-js keeps it, and by their words only where it wraps
 * them in a RuntimeError (snapshot and targets).
 */
const CASES: ReadonlyArray<[label: string, error: Error, outcome: FerryError['outcome'], message: RegExp]> = [
  [
    'an expired timestamp',
    new ExpiredMetadataError('Final timestamp.json is expired'),
    'METADATA_EXPIRED',
    /^tuf\/timestamp\.json: expired: Final timestamp\.json is expired$/,
  ],
  // The class decides, whatever its words: a missing file is a 404 from the fetcher.
  [
    'a file the fetcher does not serve',
    new DownloadHTTPError('https://bundle.invalid/x is not a bundle metadata file', 404),
    'METADATA_NOT_FOUND',
    /missing: /,
  ],
  [
    'a file over its size limit',
    new DownloadLengthMismatchError('root.json is over the limit'),
    'METADATA_MALFORMED',
    /^tuf\/root\.json: too large: /,
  ],
  [
    'too few signatures',
    new modelErrors.UnsignedMetadataError('root was signed by 0/1 keys'),
    'SECURITY_ERROR',
    /^tuf\/root\.json: signature check failed: /,
  ],
  [
    'an equal version',
    new EqualVersionError('New timestamp version 3 is equal to current version 3'),
    'SECURITY_ERROR',
    /^tuf\/timestamp\.json: version check failed: /,
  ],
  [
    'a hash that does not match',
    new modelErrors.LengthOrHashMismatchError('Expected hash aa but got bb'),
    'SECURITY_ERROR',
    /hash check failed: /,
  ],
  // A malformed field is malformed metadata, though its name says "signature".
  ['a malformed signatures field', new TypeError('signatures is not an array'), 'METADATA_MALFORMED', /malformed: /],
  ['not JSON', new SyntaxError('Unexpected token n in JSON'), 'METADATA_MALFORMED', /malformed: /],
  [
    'a role of the wrong type',
    new RepositoryError("Expected 'root', got 'targets'"),
    'SECURITY_ERROR',
    /^tuf\/root\.json: metadata check failed: /,
  ],
  [
    'an expired snapshot, wrapped',
    new RuntimeError('Unable to load snapshot metadata error Error: snapshot.json is expired'),
    'METADATA_EXPIRED',
    /^tuf\/snapshot\.json: expired: snapshot\.json is expired$/,
  ],
  [
    'targets short of signatures, wrapped',
    new RuntimeError('Unable to load targets error Error: targets was signed by 0/1 keys'),
    'SECURITY_ERROR',
    /^tuf\/targets\.json: signature check failed: /,
  ],
  [
    'a targets version the snapshot does not name, wrapped',
    new RuntimeError('Unable to load targets error Error: Version 2 of targets does not match snapshot version 3'),
    'SECURITY_ERROR',
    /^tuf\/targets\.json: version check failed: /,
  ],
];

describe('classifyTufError', () => {
  for (const [label, error, outcome, message] of CASES) {
    test(`${label}: ${outcome}`, () => {
      const classified = classifyTufError(error);
      assert.equal(classified.outcome, outcome);
      assert.match(classified.message, message);
      assert.equal(classified.cause, error);
    });
  }

  test('a FerryError passes through as it is', () => {
    const refused = new FerryError('METADATA_NOT_FOUND', 'tuf/bundle-targets.json is missing from the bundle');
    assert.equal(classifyTufError(refused), refused);
  });
});
