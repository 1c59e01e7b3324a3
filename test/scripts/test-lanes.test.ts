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

/** One run of node's test runner that scripts/test-lane.sh starts: how many files at a time, and which. */
interface NodeRun {
  readonly concurrency: string;
  readonly files: string[];
}

/**
 * The runs scripts/test-lane.sh starts, read through a `node` on PATH that prints its arguments and exits with
 * `nodeStatus`; also the script's own exit status.
 */
async function laneRuns(lane: string, nodeStatus = 0): Promise<{ runs: NodeRun[]; status: number | null }> {
  const bin = await tempDir('lane-bin');
  await fs.writeFile(path.join(bin, 'node'), `#!/bin/sh\nprintf "%s\\n" "$@" "--end--"\nexit ${nodeStatus}\n`, {
    mode: 0o755,
  });
  const result = spawnSync('bash', [path.join(ROOT, 'scripts', 'test-lane.sh'), lane], {
    encoding: 'utf8',
    env: { ...process.env, PATH: `${bin}:${process.env['PATH']}` },
  });
  const runs: NodeRun[] = [];
  let args: string[] = [];
  for (const line of result.stdout.split('\n').filter((line) => line !== '')) {
    if (line !== '--end--') {
      args.push(line);
      continue;
    }
    assert.equal(args[0], '--test');
    assert.match(args[1]!, /^--test-concurrency=\d+$/);
    assert.equal(args[2], '--test-reporter=spec');
    runs.push({ concurrency: args[1]!.split('=')[1]!, files: args.slice(3) });
    args = [];
  }
  return { runs, status: result.status };
}

async function laneFiles(lane: string): Promise<string[]> {
  const { runs, status } = await laneRuns(lane);
  assert.equal(status, 0);
  return runs.flatMap((run) => run.files);
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

test('fast: every file but the slow ones, three at a time; slow: the slow ones but the real-boot lane, two at a time; realboot: one at a time; all: the three', async () => {
  const every = await builtTestFiles();
  const slow = every.filter((file) => file.endsWith('.slow.test.js'));
  assert.ok(slow.includes(path.join('dist', 'test', 'crash', 'update.slow.test.js')), slow.join(' '));
  const realboot = slow.filter((file) => file.startsWith(path.join('dist', 'test', 'realboot') + path.sep));
  assert.ok(realboot.includes(path.join('dist', 'test', 'realboot', 'update.slow.test.js')), realboot.join(' '));
  const lanes = {
    fast: { concurrency: '3', files: every.filter((file) => !slow.includes(file)) },
    slow: { concurrency: '2', files: slow.filter((file) => !realboot.includes(file)) },
    realboot: { concurrency: '1', files: realboot },
  };
  for (const [lane, run] of Object.entries(lanes)) assert.deepEqual((await laneRuns(lane)).runs, [run], lane);
  assert.deepEqual((await laneRuns('all')).runs, [lanes.fast, lanes.slow, lanes.realboot]);
  assert.deepEqual((await laneFiles('all')).sort(), every);
});

test('all runs every lane even when one fails, and fails', async () => {
  const { runs, status } = await laneRuns('all', 1);
  assert.equal(runs.length, 3);
  assert.equal(status, 1);
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
