import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { tempDir } from '../support/factory.js';

/**
 * `ferry … | head`: the reader leaves and the pipe under stdout closes. The command still finishes its work and exits
 * with its own code, with no stack trace; only the text nobody reads is dropped.
 */

const ENTRIES = {
  ferry: fileURLToPath(new URL('../../src/cli/ferry.js', import.meta.url)),
  'aklite-offline': fileURLToPath(new URL('../../src/cli/aklite-offline.js', import.meta.url)),
};

/** Runs a command line whose stdout pipe is closed by the reader before the command writes a byte. */
function runWithStdoutClosed(
  entry: keyof typeof ENTRIES,
  args: readonly string[],
): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [ENTRIES[entry], ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.destroy();
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stderr }));
  });
}

for (const [entry, args] of [
  ['ferry', ['repo', 'init', '--help']],
  ['ferry', ['export', '--help']],
  ['aklite-offline', ['--help']],
] as const) {
  test(`${entry} ${args.join(' ')} into a pipe its reader closed: exit 0, no stack trace`, async () => {
    const result = await runWithStdoutClosed(entry, args);
    assert.equal(result.code, 0, result.stderr);
    assert.doesNotMatch(result.stderr, /EPIPE|Error|at /);
  });
}

test('repo init --json into a pipe its reader closed still makes the whole repository and exits 0', async () => {
  const dir = path.join(await tempDir('closed-pipe'), 'repo');
  const result = await runWithStdoutClosed('ferry', ['repo', 'init', dir, '--json']);
  assert.equal(result.code, 0, result.stderr);
  assert.doesNotMatch(result.stderr, /EPIPE/);
  await fs.access(path.join(dir, 'tuf', '1.root.json'));
  await fs.access(path.join(dir, 'ferry-repo.json'));
});
