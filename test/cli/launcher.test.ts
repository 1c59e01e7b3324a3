import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { MALLOC_MMAP_THRESHOLD, NODE_FLAGS } from '../../tools/cli-launcher.js';
import { tempDir } from '../support/factory.js';

/**
 * Run by name (a symlink on the PATH), the command lines start node with NODE_FLAGS: the young generation kept small,
 * and glibc's mmap threshold fixed, which together are more than half of an install's peak memory otherwise. The file stays a module node runs as `node ferry.js` too.
 */

const ENTRIES = {
  ferry: fileURLToPath(new URL('../../src/cli/ferry.js', import.meta.url)),
  'aklite-offline': fileURLToPath(new URL('../../src/cli/aklite-offline.js', import.meta.url)),
};

function run(
  command: string,
  args: readonly string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A module node loads first (NODE_OPTIONS), which writes the flags node was started with to `out`. */
async function flagRecorder(
  dir: string,
): Promise<{ env: Record<string, string>; started: () => Promise<{ flags: string[]; mmapThreshold?: string }> }> {
  const out = path.join(dir, 'exec-argv.json');
  const recorder = path.join(dir, 'record.cjs');
  await fs.writeFile(
    recorder,
    `require('node:fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify({ flags: process.execArgv, mmapThreshold: process.env.MALLOC_MMAP_THRESHOLD_ }));\n`,
  );
  return {
    env: { NODE_OPTIONS: `--require ${recorder}`, PATH: `${path.dirname(process.execPath)}:${process.env['PATH']}` },
    started: async () => JSON.parse(await fs.readFile(out, 'utf8')) as { flags: string[]; mmapThreshold?: string },
  };
}

for (const [name, entry] of Object.entries(ENTRIES)) {
  test(`${name} run by name through a symlink starts node with ${NODE_FLAGS.join(' ')}, its arguments intact`, async () => {
    const dir = await tempDir('launcher');
    const link = path.join(dir, name);
    await fs.symlink(entry, link);
    const recorder = await flagRecorder(dir);
    const result = await run(link, ['--version'], recorder.env);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^\d+\.\d+\.\d+/);
    const started = await recorder.started();
    for (const flag of NODE_FLAGS) assert.ok(started.flags.includes(flag), `node started without ${flag}`);
    assert.equal(started.mmapThreshold, String(MALLOC_MMAP_THRESHOLD));
  });
}

test('a malloc threshold already in the environment is kept', async () => {
  const dir = await tempDir('launcher-env');
  const recorder = await flagRecorder(dir);
  const result = await run(ENTRIES.ferry, ['--version'], { ...recorder.env, MALLOC_MMAP_THRESHOLD_: '131072' });
  assert.equal(result.code, 0, result.stderr);
  assert.equal((await recorder.started()).mmapThreshold, '131072');
});

test('an argument with spaces and quotes reaches ferry as one argument', async () => {
  const dir = await tempDir('launcher-args');
  const odd = path.join(dir, `a "bundle" with spaces`);
  const result = await run(ENTRIES.ferry, ['show', odd], {
    PATH: `${path.dirname(process.execPath)}:${process.env['PATH']}`,
  });
  assert.notEqual(result.code, 0);
  assert.ok(result.stderr.includes(odd), result.stderr);
});

test('node ferry.js still runs the module as it is', async () => {
  const result = await run(process.execPath, [ENTRIES.ferry, '--version'], {});
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^\d+\.\d+\.\d+/);
});
