import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { test } from 'node:test';
import { OUTCOMES } from '../src/exit-codes.js';

test('the README exit-code table lists every outcome of src/exit-codes.ts, with the same meaning', async () => {
  const readme = await fs.readFile(new URL('../../README.md', import.meta.url), 'utf8');
  const rows = new Set(readme.split('\n').filter((line) => /^\| \d+ \|/.test(line)));
  for (const [name, info] of Object.entries(OUTCOMES)) {
    const row = `| ${info.exitCode} | ${info.commands.join(', ')} | ${info.meaning} | ${info.next} |`;
    assert.ok(rows.has(row), `README lacks the row for ${name}: ${row}`);
  }
  assert.equal(rows.size, Object.keys(OUTCOMES).length, 'the README table has rows that src/exit-codes.ts does not');
});
