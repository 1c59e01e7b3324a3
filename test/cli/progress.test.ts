import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, describe, test } from 'node:test';
import { buildAppsFactory, type AppsFactory } from '../support/apps-factory.js';
import { cli } from '../support/cli.js';
import { TAG, tempDir } from '../support/factory.js';
import { makeDevice } from '../support/sim-device.js';

/** Progress: JSON lines on --progress-fd, bars on a terminal only, and --json with the human text on stderr. */

const FERRY = fileURLToPath(new URL('../../src/cli/ferry.js', import.meta.url));

let factory: AppsFactory;
before(async () => {
  factory = await buildAppsFactory();
});

async function progressEvents(run: (fd: number) => Promise<number>): Promise<Array<Record<string, any>>> {
  const file = path.join(await tempDir('progress'), 'events.jsonl');
  const fd = openSync(file, 'w');
  try {
    assert.equal(await run(fd), 0);
  } finally {
    closeSync(fd);
  }
  return (await fs.readFile(file, 'utf8'))
    .trimEnd()
    .split('\n')
    .map((line) => JSON.parse(line));
}

describe('progress', () => {
  test('export --progress-fd: JSON lines {phase, bytes, total, target} for the rootfs and the apps, ending complete', async () => {
    const destination = path.join(await tempDir('progress-export'), 'bundle');
    const events = await progressEvents(async (fd) => {
      const result = await cli(
        'export',
        factory.targets.mixed,
        destination,
        '--repo',
        factory.repo.dir,
        '--tag',
        TAG,
        '--progress-fd',
        String(fd),
      );
      return result.code;
    });
    for (const phase of ['rootfs', 'apps']) {
      const mine = events.filter((event) => event['phase'] === phase);
      assert.ok(mine.length >= 2, `events for ${phase}`);
      assert.ok(mine.every((event) => event['target'] === factory.targets.mixed && event['total'] > 0));
      const last = mine.at(-1)!;
      assert.equal(last['bytes'], last['total'], `${phase} ends complete`);
      assert.ok(
        mine.every((event, i) => i === 0 || event['bytes'] >= mine[i - 1]!['bytes']),
        'bytes only grow',
      );
    }
  });

  test('verify --progress-fd: the blobs checked, in bytes; a closed descriptor number is a usage error', async () => {
    const destination = path.join(await tempDir('progress-verify'), 'bundle');
    assert.equal(
      (await cli('export', factory.targets.base, destination, '--repo', factory.repo.dir, '--tag', TAG)).code,
      0,
    );
    const events = await progressEvents(
      async (fd) => (await cli('verify', destination, '--progress-fd', String(fd))).code,
    );
    assert.ok(events.some((event) => event['phase'] === 'verify' && event['app'] === 'heartbeat'));
    assert.equal(events.at(-1)!['bytes'], events.at(-1)!['total']);
    const bad = await cli('verify', destination, '--progress-fd', '987');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--progress-fd 987 is not an open file descriptor/);
  });

  test('--json on any command: one JSON object on stdout, the human text on stderr', async () => {
    const repo = path.join(await tempDir('json-repo'), 'repo');
    const result = await cli('repo', 'init', repo, '--json');
    assert.equal(result.code, 0, result.stderr);
    const parsed = JSON.parse(result.stdout);
    assert.equal(parsed.outcome, 'OK');
    assert.match(parsed.message, /created factory repository/);
    assert.match(result.stderr, /created factory repository/);
    const refused = await cli('repo', 'init', repo, '--json');
    assert.equal(refused.code, 41);
    assert.equal(JSON.parse(refused.stdout).exitCode, 41);
    assert.equal(refused.stderr.trimEnd().split('\n').length, 1);
  });

  test('an install on a terminal draws byte bars with rate and ETA; through a pipe, no escape code at all', async () => {
    const bundle = path.join(await tempDir('tty-bundle'), 'bundle');
    assert.equal(
      (await cli('export', factory.targets.mixed, bundle, '--repo', factory.repo.dir, '--tag', TAG)).code,
      0,
    );
    const args = async () => {
      const device = await makeDevice(factory as never, factory.targets.noApps);
      // noApps (version 5) runs first: the older mixed target goes in with --force.
      return [FERRY, 'install', '--config', device.configDir, '--src-dir', bundle, '--force'];
    };
    const quote = (word: string) => `'${word.replace(/'/g, `'\\''`)}'`;
    const command = [process.execPath, ...(await args())].map(quote).join(' ');
    const tty = spawnSync('script', ['-q', '-e', '-c', command, '/dev/null'], { encoding: 'utf8' });
    assert.equal(tty.status, 100, tty.stdout + tty.stderr);
    assert.match(tty.stdout, /apps\s+\[[█░]+\] \d+% \| .* of .* \| .*\/s \| ETA/);
    assert.match(tty.stdout, /rootfs\s+\[[█░]+\] 100% \|/);
    assert.match(tty.stdout, /\x1b\[/, 'a terminal gets cursor control');

    const piped = spawnSync(process.execPath, await args(), { encoding: 'utf8' });
    assert.equal(piped.status, 100, piped.stderr);
    assert.doesNotMatch(piped.stdout + piped.stderr, /\x1b/);
    assert.doesNotMatch(piped.stdout + piped.stderr, /ETA/);
    assert.match(piped.stdout, /^installed target /);
  });

  test('install --progress-fd on a device reports the apps and the rootfs it copies', async () => {
    const bundle = path.join(await tempDir('progress-install'), 'bundle');
    assert.equal(
      (await cli('export', factory.targets.mixed, bundle, '--repo', factory.repo.dir, '--tag', TAG)).code,
      0,
    );
    const device = await makeDevice(factory as never, factory.targets.noApps);
    const events = await progressEvents(async (fd) => {
      const result = await cli(
        'install',
        '--config',
        device.configDir,
        '--src-dir',
        bundle,
        '--progress-fd',
        String(fd),
        '--force',
      );
      return result.code === 100 ? 0 : result.code;
    });
    assert.deepEqual([...new Set(events.map((event) => event['phase']))], ['apps', 'rootfs']);
    assert.equal(events.at(-1)!['bytes'], events.at(-1)!['total']);
  });
});
