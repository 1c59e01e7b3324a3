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

describe('pending updates of the older shape (the phase in optional fields)', () => {
  const v1 = { name: 'os-1', version: '1', commit: '1'.repeat(64), apps: {} };
  const v2 = { name: 'os-2', version: '2', commit: '2'.repeat(64), apps: {} };
  const base = { target: v2, previous: v1, installedAt: '2026-11-23T09:58:00.000Z', completion: 'reboot' as const };

  test('a record written with stage and testing fields loads as one phase, and is saved in the new shape', async () => {
    const dir = await tempDir('status');
    const name = path.join(dir, 'status.json');
    await fs.copyFile(new URL('../../../test/fixtures/status-optional-fields.json', import.meta.url), name);
    const file = new StatusFile(name);
    const { status, recovered } = await file.load();
    assert.equal(recovered, undefined);
    assert.deepEqual(status.pending, {
      ...base,
      phase: 'testing',
      rootfsChanged: true,
      repair: false,
      window: { since: '2026-11-23T10:00:00.000Z', until: '2026-11-23T10:02:00.000Z', boot: null },
    });
    await file.save(status);
    const saved = JSON.parse(await fs.readFile(name, 'utf8'));
    assert.equal(saved.pending.phase, 'testing');
    assert.equal('testing' in saved.pending || 'stage' in saved.pending, false);
  });

  const cases: Array<[string, Record<string, unknown>, Record<string, unknown>]> = [
    [
      'no stage (records older than it were staged)',
      { ...base, rootfsChanged: true },
      { phase: 'staged', repair: false },
    ],
    ['stage "staged"', { ...base, rootfsChanged: true, stage: 'staged' }, { phase: 'staged', repair: false }],
    [
      'stage "deploying" of a repair',
      { ...base, rootfsChanged: false, stage: 'deploying', repair: true },
      { phase: 'deploying', repair: true },
    ],
    [
      'a window with its boot',
      { ...base, rootfsChanged: true, testing: { since: 'a', until: 'b', boot: 'boot-1' } },
      { phase: 'testing', window: { since: 'a', until: 'b', boot: 'boot-1' } },
    ],
    [
      'a way back (rollbackOf), before its apps started',
      { ...base, target: v1, previous: v2, rootfsChanged: true, rollbackOf: v2 },
      { phase: 'returning', from: v2, window: null },
    ],
    [
      'a way back whose apps are in their window',
      { ...base, target: v1, previous: v2, rootfsChanged: true, rollbackOf: v2, testing: { since: 'a', until: 'b' } },
      { phase: 'returning', from: v2, window: { since: 'a', until: 'b', boot: null } },
    ],
  ];
  for (const [name, old, expected] of cases) {
    test(`${name} → ${String(expected['phase'])}`, async () => {
      const dir = await tempDir('status');
      const file = path.join(dir, 'status.json');
      await fs.writeFile(file, JSON.stringify({ ...emptyStatus(), state: 'INPROGRESS', pending: old }));
      const pending = (await new StatusFile(file).load()).status.pending as unknown as Record<string, unknown>;
      for (const [key, value] of Object.entries(expected)) assert.deepEqual(pending[key], value, key);
      for (const gone of ['stage', 'testing', 'rollbackOf']) assert.equal(gone in pending, false, gone);
    });
  }
});
