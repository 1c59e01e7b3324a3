import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FerryError } from '../../src/errors.js';
import { withLockFile } from '../../src/util/lock-file.js';
import { cli } from '../support/cli.js';
import { buildFactory, TAG, tempDir, type TestFactory } from '../support/factory.js';
import { hashTree } from '../support/tree-hash.js';

/**
 * One command at a time changes a factory repository: a second export, target add, app add or key rotation while one
 * runs is refused at once (35) and changes nothing; a lock whose holder is gone, or that an earlier boot left, is
 * taken over.
 */

let factory: TestFactory;
let sleeper: ChildProcess;
const BOOT_ID = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();

before(async () => {
  factory = await buildFactory();
  sleeper = spawn('sleep', ['300'], { stdio: 'ignore' });
});
after(() => sleeper.kill());

const lockFile = () => path.join(factory.repo.dir, '.ferry.lock');

async function holdLock(holder: Record<string, unknown>): Promise<void> {
  await fs.writeFile(lockFile(), JSON.stringify(holder));
}

describe('the factory lock', () => {
  test('export, target add, app add and keys rotate while another command holds the factory: 35, one line, nothing changed', async () => {
    await holdLock({ pid: sleeper.pid, command: 'export', since: '2026-11-30T00:00:00.000Z', bootId: BOOT_ID });
    try {
      const before = await hashTree(factory.repo.dir);
      const destination = path.join(await tempDir('locked-export'), 'bundle');
      const compose = await tempDir('locked-compose');
      for (const args of [
        ['export', factory.v2, destination, '--repo', factory.repo.dir, '--tag', TAG],
        [
          'target',
          'add',
          '--repo',
          factory.repo.dir,
          '--name',
          'x',
          '--version',
          '9',
          '--hardware-id',
          'h',
          '--tag',
          TAG,
          '--ref',
          'r',
          '--ostree-repo',
          compose,
        ],
        ['app', 'add', 'hello', '--repo', factory.repo.dir, '--compose', compose],
        ['keys', 'rotate', '--repo', factory.repo.dir, '--role', 'targets'],
      ]) {
        const result = await cli(...args);
        assert.equal(result.code, 35, `${args.join(' ')}: ${result.stderr}`);
        assert.equal(
          result.stderr,
          `ferry: another ferry export is changing ${factory.repo.dir} (pid ${sleeper.pid}, since 2026-11-30T00:00:00.000Z)\n`,
        );
      }
      assert.equal(await hashTree(factory.repo.dir), before, 'the factory changed');
      await assert.rejects(fs.access(destination));
    } finally {
      await fs.rm(lockFile(), { force: true });
    }
  });

  test('a lock whose process is gone is taken over, and released once the export is done', async () => {
    const gone = spawn('true');
    await new Promise((resolve) => gone.once('exit', resolve));
    await holdLock({ pid: gone.pid, command: 'export', since: '2026-11-30T00:00:00.000Z', bootId: BOOT_ID });
    const destination = path.join(await tempDir('stale-export'), 'bundle');
    const result = await cli('export', factory.v2, destination, '--repo', factory.repo.dir, '--tag', TAG);
    assert.equal(result.code, 0, result.stderr);
    await fs.access(path.join(destination, 'tuf', 'timestamp.json'));
    await assert.rejects(fs.access(lockFile()));
  });

  test('a lock an earlier boot left is taken over even when its pid now belongs to a live process', async () => {
    await holdLock({
      pid: sleeper.pid,
      command: 'export',
      since: '2026-01-01T00:00:00.000Z',
      bootId: 'an-earlier-boot',
    });
    const destination = path.join(await tempDir('old-boot-export'), 'bundle');
    const result = await cli('export', factory.v2, destination, '--repo', factory.repo.dir, '--tag', TAG);
    assert.equal(result.code, 0, result.stderr);
    await assert.rejects(fs.access(lockFile()));
  });
});

test('withLockFile: a live holder refuses the second taker; the lock is free again once the work is done', async () => {
  const file = path.join(await tempDir('lock-file'), 'x.lock');
  await fs.writeFile(file, JSON.stringify({ pid: sleeper.pid, command: 'first', since: 'now', bootId: BOOT_ID }));
  const busy = (holder: { command: string } | undefined) =>
    new FerryError('LOCKED', `held by ${holder?.command ?? 'nobody'}`);
  await assert.rejects(
    withLockFile(file, 'second', busy, async () => 'ran'),
    (error: FerryError) => error.outcome === 'LOCKED' && error.message === 'held by first',
  );
  await fs.rm(file);
  assert.equal(await withLockFile(file, 'second', busy, async () => 'ran'), 'ran');
  await assert.rejects(fs.access(file));
});
