import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, describe, test } from 'node:test';
import { buildAppsFactory, type AppsFactory } from '../support/apps-factory.js';
import { cli, ferryProcess } from '../support/cli.js';
import { PrivateDockerd } from '../support/dockerd.js';
import { TAG, tempDir } from '../support/factory.js';
import { makeDevice, openTestDevice } from '../support/sim-device.js';
import { hashTree } from '../support/tree-hash.js';
import { createSimDevice } from '../../src/sim/sim-device.js';

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

/** Runs ferry as its own process with `extra` as its descriptors 3 and up; what it wrote to a piped 3 comes back. */
function ferryWithDescriptors(
  args: readonly string[],
  extra: Array<'pipe' | number>,
): Promise<{ code: number | null; stderr: string; fd3: string }> {
  const child: ChildProcess = spawn(process.execPath, [FERRY, ...args], {
    stdio: ['ignore', 'ignore', 'pipe', ...extra],
  });
  let stderr = '';
  let fd3 = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  (child.stdio[3] as NodeJS.ReadableStream | null)?.on('data', (chunk: Buffer) => (fd3 += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code: number | null) => resolve({ code, stderr, fd3 }));
  });
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
      // The rootfs is counted once its objects are listed, beside the copy: a small one may be copied by then.
      assert.ok(mine.length >= (phase === 'rootfs' ? 1 : 2), `events for ${phase}`);
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

  test('an install on a terminal draws one bar per phase that never goes back; through a pipe, no escape code at all', async () => {
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
    assert.match(tty.stdout, /apps\s+\[█+\] 100% \| 1\.0 MiB/);
    assert.match(tty.stdout, /rootfs\s+\[█+\] 100% \|/);
    assert.match(tty.stdout, /\x1b\[/, 'a terminal gets cursor control');
    // Every drawing of every bar, in the order drawn: a phase never goes back, and no ETA is made up.
    const frames = tty.stdout
      .split(/\r|\n|\x1b\[[0-9;?]*[A-Za-z]/)
      .map((piece) => /^(rootfs|apps)\s+\[[█░]+\]\s+(\d+)%/.exec(piece))
      .filter((match) => match !== null);
    for (const phase of ['apps', 'rootfs']) {
      const percents = frames.filter((match) => match[1] === phase).map((match) => Number(match[2]));
      assert.ok(percents.length > 0 && percents.at(-1) === 100, `${phase}: ${percents.join(' ')}`);
      assert.ok(
        percents.every((percent, i) => i === 0 || percent >= percents[i - 1]!),
        `${phase}: ${percents.join(' ')}`,
      );
    }
    assert.doesNotMatch(tty.stdout, /ETA (NF|LL)s|NaN|Infinity/);

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

  test('--progress-fd naming no descriptor the caller gave is a usage error before any work, never a crash after it', async () => {
    const bundle = path.join(await tempDir('progress-fd'), 'bundle');
    assert.equal((await cli('export', factory.targets.base, bundle, '--repo', factory.repo.dir, '--tag', TAG)).code, 0);
    // The runtime's own event loop, its signal and wake-up pipes sit among these: writing there crashed the process.
    for (let fd = 3; fd <= 20; fd += 1) {
      const result = await ferryProcess(['verify', bundle, '--progress-fd', String(fd)]);
      assert.equal(result.signal, null, `fd ${fd}`);
      assert.equal(result.code, 2, `fd ${fd}: ${result.stderr}`);
      assert.equal(result.stdout, '');
      assert.match(
        result.stderr,
        // (The runtime also holds a /dev/null for reading.)
        new RegExp(
          `^ferry: --progress-fd ${fd} (is not an open file descriptor given to this command|is open for reading only): .*\\n$`,
        ),
      );
    }
    const json = await ferryProcess(['verify', bundle, '--progress-fd', '5', '--json']);
    assert.equal(json.code, 2);
    const parsed = JSON.parse(json.stdout);
    assert.equal(parsed.outcome, 'USAGE');
    assert.match(parsed.message, /--progress-fd 5 is not an open file descriptor/);
    assert.equal(json.stderr.trimEnd().split('\n').length, 1);

    const destination = path.join(await tempDir('progress-fd-export'), 'bundle');
    const exported = await ferryProcess([
      'export',
      factory.targets.base,
      destination,
      '--repo',
      factory.repo.dir,
      '--tag',
      TAG,
      '--progress-fd',
      '5',
    ]);
    assert.equal(exported.code, 2, exported.stderr);
    await assert.rejects(fs.stat(destination), { code: 'ENOENT' }, 'nothing exported');

    const device = await makeDevice(factory as never, factory.targets.noApps);
    const before = await hashTree(device.dir);
    const installed = await ferryProcess([
      'install',
      '--config',
      device.configDir,
      '--src-dir',
      bundle,
      '--progress-fd',
      '5',
    ]);
    assert.equal(installed.code, 2, installed.stderr);
    assert.equal(await hashTree(device.dir), before, 'the device unchanged');

    // What the caller does hand over works: a pipe, and a file opened for writing; one opened for reading does not.
    const piped = await ferryWithDescriptors(['verify', bundle, '--progress-fd', '3'], ['pipe']);
    assert.equal(piped.code, 0, piped.stderr);
    assert.equal(JSON.parse(piped.fd3.trimEnd().split('\n').at(-1)!).phase, 'verify');
    const readOnly = openSync(path.join(bundle, 'tuf', 'targets.json'), 'r');
    try {
      const refused = await ferryWithDescriptors(['verify', bundle, '--progress-fd', '3'], [readOnly]);
      assert.equal(refused.code, 2);
      assert.match(refused.stderr, /^ferry: --progress-fd 3 is open for reading only/);
    } finally {
      closeSync(readOnly);
    }
  });

  test('export --read-back --progress-fd: the rootfs, the apps, then the read-back as verify events', async () => {
    const destination = path.join(await tempDir('progress-read-back'), 'bundle');
    const events = await progressEvents(
      async (fd) =>
        (
          await cli(
            'export',
            factory.targets.mixed,
            destination,
            '--repo',
            factory.repo.dir,
            '--tag',
            TAG,
            '--read-back',
            '--progress-fd',
            String(fd),
          )
        ).code,
    );
    const verify = events.filter((event) => event['phase'] === 'verify');
    assert.ok(verify.length >= 2, JSON.stringify(events));
    assert.ok(verify[0]!['total'] > 0);
    assert.equal(verify.at(-1)!['bytes'], verify.at(-1)!['total']);
    assert.ok(verify.some((event) => event['app'] === 'heartbeat'));
  });

  test('an export adding a target to a stick counts only the rootfs objects the stick lacks', async () => {
    const destination = path.join(await tempDir('progress-add'), 'bundle');
    const exportWith = (target: string, ...extra: string[]) =>
      progressEvents(
        async (fd) =>
          (
            await cli(
              'export',
              target,
              destination,
              '--repo',
              factory.repo.dir,
              '--tag',
              TAG,
              ...extra,
              '--progress-fd',
              String(fd),
            )
          ).code,
      );
    const rootfsTotal = (events: Array<Record<string, any>>) =>
      events.filter((event) => event['phase'] === 'rootfs').at(-1)!['total'];
    const first = rootfsTotal(await exportWith(factory.targets.base));
    assert.ok(first > 0);
    // rootfs B shares most of its files with rootfs A, which the stick already holds.
    const added = rootfsTotal(await exportWith(factory.targets.mixed, '--allow-multiple-targets'));
    assert.ok(added > 0 && added < first, `${added} of ${first}`);
  });

  test('run --progress-fd: the testing window in seconds, passed of its length, with each app goal, ending complete', async (t) => {
    const daemon = await PrivateDockerd.start();
    t.after(() => daemon.stop());
    const dir = path.join(await tempDir('progress-run'), 'device');
    await createSimDevice(dir, factory.repo, {
      target: factory.targets.base,
      dockerHost: daemon.host,
      testingWindowSeconds: 3,
    });
    const device = await openTestDevice(dir);
    const bundle = path.join(await tempDir('progress-run-bundle'), 'bundle');
    assert.equal(
      (await cli('export', factory.targets.heartbeatV2, bundle, '--repo', factory.repo.dir, '--tag', TAG)).code,
      0,
    );
    assert.equal((await cli('install', '--config', device.configDir, '--src-dir', bundle)).code, 101);
    await daemon.restart();
    const events = await progressEvents(
      async (fd) => (await cli('run', '--config', device.configDir, '--progress-fd', String(fd))).code,
    );
    assert.ok(events.length >= 2, JSON.stringify(events));
    for (const event of events) {
      assert.deepEqual(Object.keys(event).sort(), ['apps', 'phase', 'seconds', 'target', 'total']);
      assert.deepEqual(event['apps'], { heartbeat: { goal: 'running', reached: 'running' } });
      assert.equal(event['phase'], 'testing');
      assert.equal(event['target'], factory.targets.heartbeatV2);
      assert.equal(event['total'], 3);
    }
    assert.ok(events.every((event, i) => i === 0 || event['seconds'] >= events[i - 1]!['seconds']));
    assert.equal(events.at(-1)!['seconds'], 3);
  });

  test('verify of a delta bundle ends complete: the layers it leaves to its base count as done', async () => {
    const delta = path.join(await tempDir('progress-delta'), 'bundle');
    const exported = await cli(
      'export',
      factory.targets.heartbeatV2,
      delta,
      '--repo',
      factory.repo.dir,
      '--tag',
      TAG,
      '--from',
      factory.targets.base,
    );
    assert.equal(exported.code, 0, exported.stderr);
    const events = await progressEvents(async (fd) => (await cli('verify', delta, '--progress-fd', String(fd))).code);
    const last = events.at(-1)!;
    assert.ok(last['total'] > 0);
    assert.equal(last['bytes'], last['total']);
  });
});
