import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { tempDir } from '../support/factory.js';

/**
 * The two lanes: `npm test` runs the fast one (every test file but the *.slow.test.js ones), `bash scripts/test.sh`
 * (what CI runs) sets the machine up and runs every file. A file that starts a container engine or boots a machine
 * belongs to the slow lane.
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** The files scripts/test-lane.sh hands to node, read through a `node` on PATH that prints its arguments. */
async function laneFiles(lane: string): Promise<string[]> {
  const bin = await tempDir('lane-bin');
  await fs.writeFile(path.join(bin, 'node'), '#!/bin/sh\nprintf "%s\\n" "$@"\n', { mode: 0o755 });
  const result = spawnSync('bash', [path.join(ROOT, 'scripts', 'test-lane.sh'), lane], {
    encoding: 'utf8',
    env: { ...process.env, PATH: `${bin}:${process.env['PATH']}` },
  });
  assert.equal(result.status, 0, result.stderr);
  const args = result.stdout.split('\n').filter((line) => line !== '');
  assert.deepEqual(args.slice(0, 2), ['--test', '--test-reporter=spec']);
  return args.slice(2);
}

async function builtTestFiles(): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await fs.readdir(path.join(ROOT, dir), { withFileTypes: true })) {
      const name = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(name);
      else if (entry.name.endsWith('.test.js')) found.push(name);
    }
  };
  await walk(path.join('dist', 'test'));
  return found.sort();
}

test('the fast lane is every test file but the slow ones; the full lane is every test file', async () => {
  const every = await builtTestFiles();
  const slow = every.filter((file) => file.endsWith('.slow.test.js'));
  assert.ok(slow.includes(path.join('dist', 'test', 'crash', 'update.slow.test.js')), slow.join(' '));
  assert.deepEqual(
    await laneFiles('fast'),
    every.filter((file) => !slow.includes(file)),
  );
  assert.deepEqual(await laneFiles('all'), every);
});

test('a test file that starts a container engine or boots a machine is in the slow lane', async () => {
  const starts = /PrivateDockerd\.start\(|startDockerd\(|startCrashRig\(|realbootImages\(/;
  const fast = await laneFiles('fast');
  const offenders: string[] = [];
  for (const file of fast) {
    if (starts.test(await fs.readFile(path.join(ROOT, file), 'utf8'))) offenders.push(file);
  }
  assert.deepEqual(offenders, []);
});

test('npm test builds and runs the fast lane; scripts/test.sh sets the machine up, then runs every file', async () => {
  const scripts = JSON.parse(await fs.readFile(path.join(ROOT, 'package.json'), 'utf8')).scripts;
  assert.equal(scripts.test, 'npm run build && bash scripts/test-lane.sh fast');
  const commands = (await fs.readFile(path.join(ROOT, 'scripts', 'test.sh'), 'utf8'))
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#') && !line.startsWith('set ') && !line.startsWith('cd '));
  assert.deepEqual(commands, ['bash scripts/setup.sh', 'exec bash scripts/test-lane.sh all']);
  const ci = (await fs.readFile(path.join(ROOT, '.ci', 'run'), 'utf8')).trimEnd().split('\n').at(-1);
  assert.equal(ci, 'bash scripts/test.sh');
});
