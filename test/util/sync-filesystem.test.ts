import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { syncFilesystem } from '../../src/util/sync-filesystem.js';
import { tempDir } from '../support/factory.js';

/** busybox's sync stands in for coreutils' here: a device or rescue system has only busybox. */
test("the media flush works with busybox's sync as well as coreutils'", async () => {
  const dir = await tempDir('sync-busybox');
  const bin = path.join(dir, 'bin');
  await fs.mkdir(bin);
  await fs.symlink('/bin/busybox', path.join(bin, 'sync'));
  const file = path.join(dir, 'written');
  await fs.writeFile(file, 'data');
  const savedPath = process.env['PATH'];
  process.env['PATH'] = `${bin}:${savedPath ?? ''}`;
  try {
    await syncFilesystem(file);
  } finally {
    process.env['PATH'] = savedPath;
  }
  // And coreutils' own.
  await syncFilesystem(file);
  assert.equal(await fs.readFile(file, 'utf8'), 'data');
});
