import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { StatusFile, emptyStatus } from '../../src/device/status-file.js';
import { tempDir } from '../support/factory.js';

describe('status record', () => {
  test('save then load returns the same record, and leaves no temp file behind', async () => {
    const dir = await tempDir('status');
    const file = new StatusFile(path.join(dir, 'ferry', 'status.json'));
    const record = {
      ...emptyStatus(),
      state: 'DONE' as const,
      reason: 'ok',
      current: { name: 'a-1', version: '1', commit: 'c'.repeat(64), apps: {} },
    };
    await file.save(record);
    assert.deepEqual((await file.load()).status, record);
    assert.deepEqual(await fs.readdir(path.join(dir, 'ferry')), ['status.json']);
  });

  test('a missing record loads as empty', async () => {
    const dir = await tempDir('status');
    assert.deepEqual((await new StatusFile(path.join(dir, 'status.json')).load()).status, emptyStatus());
  });

  test('an unreadable record is moved aside to .broken, never trusted and never deleted', async () => {
    const dir = await tempDir('status');
    const name = path.join(dir, 'status.json');
    await fs.writeFile(name, '{"schema":1,"state":"DO');
    const { status, recovered } = await new StatusFile(name).load();
    assert.deepEqual(status, emptyStatus());
    assert.match(recovered ?? '', /moved to .*status\.json\.broken/);
    assert.equal(await fs.readFile(`${name}.broken`, 'utf8'), '{"schema":1,"state":"DO');
    await assert.rejects(fs.access(name));
  });

  test('a record that cannot be read as a file at all (a directory) is moved aside too', async () => {
    const dir = await tempDir('status');
    const name = path.join(dir, 'status.json');
    await fs.mkdir(path.join(name, 'inside'), { recursive: true });
    const { status, recovered } = await new StatusFile(name).load();
    assert.deepEqual(status, emptyStatus());
    assert.match(recovered ?? '', /moved to/);
    await fs.access(path.join(`${name}.broken`, 'inside'));
  });
});
