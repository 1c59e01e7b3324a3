import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Metadata, MetadataKind, type Targets } from '@tufjs/models';
import '../../src/tuf/models-patch.js';

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
