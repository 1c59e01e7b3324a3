import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { FerryError } from '../../src/errors.js';
import { OUTCOMES } from '../../src/exit-codes.js';
import { verifyFoundriesStick } from '../../src/tuf/foundries/fio-verify-stick.js';
import { detectStickFormat } from '../../src/tuf/foundries/stick-format.js';
import { readStickMetadataFiles } from '../../src/tuf/stick-files.js';
import { tempDir } from '../support/factory.js';
import { FIO_FIXTURE_TUF } from '../support/foundries-signer.js';

/** The adapter that reads a stick's tuf/ for the pure verifiers: the fixture copied to a temporary stick. */

async function fixtureCopy(): Promise<string> {
  const tuf = path.join(await tempDir('fio-stick'), 'tuf');
  await fs.cp(FIO_FIXTURE_TUF, tuf, { recursive: true });
  return tuf;
}

const NOW = new Date('2026-11-30T00:00:00Z');

test('the fixture read from a stick is a Foundries stick and verifies; directories and other files are left out', async () => {
  const tuf = await fixtureCopy();
  await fs.mkdir(path.join(tuf, 'sub.json'));
  await fs.writeFile(path.join(tuf, 'notes.txt'), 'not metadata');
  const files = await readStickMetadataFiles(tuf);
  assert.deepEqual(
    [...files.keys()],
    ['1.root.json', 'bundle-targets.json', 'snapshot.json', 'targets.json', 'timestamp.json'],
  );
  assert.equal(detectStickFormat(files), 'foundries');
  const verified = verifyFoundriesStick({ trusted: { root: files.get('1.root.json')! }, files, now: NOW });
  assert.deepEqual(verified.bundle.targets, ['fio-hw-lmp-1', 'fio-hw-lmp-2']);
});

test('an oversized metadata file is refused by name before it is read (16); a missing tuf/ is 13', async () => {
  const tuf = await fixtureCopy();
  await fs.truncate(path.join(tuf, 'snapshot.json'), 5 * 1024 * 1024);
  const refusal = (code: number, pattern: RegExp) => (error: unknown) =>
    error instanceof FerryError &&
    OUTCOMES[error.outcome].exitCode === code &&
    pattern.test(error.message) &&
    !error.message.includes('\n');
  await assert.rejects(
    readStickMetadataFiles(tuf),
    refusal(16, /^tuf\/snapshot\.json: .*more than the \d+ bytes allowed$/),
  );
  await assert.rejects(readStickMetadataFiles(path.join(tuf, 'missing')), refusal(13, /^cannot read /));
});
