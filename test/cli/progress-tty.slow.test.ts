import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, describe, test, type TestContext } from 'node:test';
import { buildAppsFactory, type AppsFactory } from '../support/apps-factory.js';
import { cli } from '../support/cli.js';
import { PrivateDockerd } from '../support/dockerd.js';
import { TAG, tempDir } from '../support/factory.js';
import { makeDevice, openTestDevice } from '../support/sim-device.js';
import { createSimDevice } from '../../src/sim/sim-device.js';

/**
 * The bars as a person sees them: each command runs in a real terminal (a tmux pane of 120 columns), and the test
 * reads the screen tmux rendered once the command ended. Every phase must end on one line of its own, complete,
 * with nothing left over from earlier drawings.
 */

const FERRY = fileURLToPath(new URL('../../src/cli/ferry.js', import.meta.url));
const quote = (word: string) => `'${word.replace(/'/g, `'\\''`)}'`;
/** How long a command in the pane may take before the test fails instead of waiting for ever. */
const COMMAND_LIMIT_MS = 300_000;

/** Runs `ferry args` in a fresh tmux server on a private socket; returns the rendered screen and the exit code. */
async function inTerminal(t: TestContext, args: readonly string[]): Promise<{ screen: string[]; code: number }> {
  const socket = path.join(await tempDir('tmux'), 'tmux.sock');
  const tmux = (...words: string[]) => {
    const result = spawnSync('tmux', ['-S', socket, ...words], { encoding: 'utf8', timeout: COMMAND_LIMIT_MS });
    assert.equal(result.status, 0, `tmux ${words[0]}: ${result.stderr}${String(result.error ?? '')}`);
    return result.stdout;
  };
  tmux('new-session', '-d', '-s', 'ferry', '-x', '120', '-y', '60', "env PS1='$ ' sh");
  t.after(() => spawnSync('tmux', ['-S', socket, 'kill-server']));
  const command = [process.execPath, FERRY, ...args].map(quote).join(' ');
  tmux(
    'send-keys',
    '-t',
    'ferry',
    '-l',
    `clear; ${command}; echo "exit=$?"; tmux -S ${quote(socket)} wait-for -S done`,
  );
  tmux('send-keys', '-t', 'ferry', 'Enter');
  tmux('wait-for', 'done');
  const screen = tmux('capture-pane', '-p', '-J', '-t', 'ferry').split('\n');
  t.diagnostic(screen.filter((line) => line !== '').join('\n'));
  const exit = screen.map((line) => /^exit=(\d+)$/.exec(line)?.[1]).find((code) => code !== undefined);
  assert.notEqual(exit, undefined, screen.join('\n'));
  return { screen, code: Number(exit) };
}

/** The bar lines on the screen, by phase; and what follows them. */
function barsOf(screen: readonly string[]): Map<string, string[]> {
  const bars = new Map<string, string[]>();
  for (const line of screen) {
    const phase = /^(rootfs|apps|verify|testing)\s+\[/.exec(line)?.[1];
    if (phase !== undefined) bars.set(phase, [...(bars.get(phase) ?? []), line]);
  }
  return bars;
}

function assertEndedComplete(screen: readonly string[], phases: readonly string[]): void {
  const text = screen.join('\n');
  const bars = barsOf(screen);
  assert.deepEqual([...bars.keys()].sort(), [...phases].sort(), text);
  for (const [phase, lines] of bars) {
    assert.equal(lines.length, 1, `one line for ${phase}:\n${text}`);
    assert.match(lines[0]!, /^\w+\s+\[█+\] 100% \| /, text);
  }
  assert.doesNotMatch(text, /ETA (NF|LL)s|0 B of 0 B|NaN|Infinity/, text);
}

let factory: AppsFactory;
before(async () => {
  factory = await buildAppsFactory();
});

describe('progress bars on a real terminal', () => {
  test('export --read-back: rootfs, apps and verify, each on one line, complete, then the result', async (t) => {
    const destination = path.join(await tempDir('tty-export'), 'bundle');
    const args = ['export', factory.targets.mixed, destination, '--repo', factory.repo.dir, '--tag', TAG];
    const { screen, code } = await inTerminal(t, [...args, '--read-back']);
    assert.equal(code, 0, screen.join('\n'));
    assertEndedComplete(screen, ['rootfs', 'apps', 'verify']);
    const last = screen.findIndex((line) => /^verify\s+\[/.test(line));
    assert.match(screen.slice(last + 1).join('\n'), /^exported /, 'the result right under the bars');
  });

  test('a target without apps gets no apps bar at all', async (t) => {
    const destination = path.join(await tempDir('tty-no-apps'), 'bundle');
    const args = ['export', factory.targets.noApps, destination, '--repo', factory.repo.dir, '--tag', TAG];
    const { screen, code } = await inTerminal(t, args);
    assert.equal(code, 0, screen.join('\n'));
    assertEndedComplete(screen, ['rootfs']);
  });

  test('install: apps and rootfs, each on one line, complete', async (t) => {
    const bundle = path.join(await tempDir('tty-install'), 'bundle');
    const exported = await cli('export', factory.targets.mixed, bundle, '--repo', factory.repo.dir, '--tag', TAG);
    assert.equal(exported.code, 0, exported.stderr);
    const device = await makeDevice(factory as never, factory.targets.noApps);
    const { screen, code } = await inTerminal(t, [
      'install',
      '--config',
      device.configDir,
      '--src-dir',
      bundle,
      '--force',
    ]);
    assert.equal(code, 100, screen.join('\n'));
    assertEndedComplete(screen, ['apps', 'rootfs']);
  });

  test('run: the testing window counts down on its own line, and ends complete', async (t) => {
    const daemon = await PrivateDockerd.start();
    t.after(() => daemon.stop());
    const dir = path.join(await tempDir('tty-run'), 'device');
    await createSimDevice(dir, factory.repo, {
      target: factory.targets.base,
      dockerHost: daemon.host,
      testingWindowSeconds: 3,
    });
    const device = await openTestDevice(dir);
    const bundle = path.join(await tempDir('tty-run-bundle'), 'bundle');
    const exported = await cli('export', factory.targets.heartbeatV2, bundle, '--repo', factory.repo.dir, '--tag', TAG);
    assert.equal(exported.code, 0, exported.stderr);
    assert.equal((await cli('install', '--config', device.configDir, '--src-dir', bundle)).code, 101);
    await daemon.restart();
    const { screen, code } = await inTerminal(t, ['run', '--config', device.configDir]);
    assert.equal(code, 0, screen.join('\n'));
    assertEndedComplete(screen, ['testing']);
    assert.match(barsOf(screen).get('testing')![0]!, /3s testing window passed/);
  });
});
