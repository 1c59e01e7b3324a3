import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { writeTar, type TarMember } from '../../src/util/tar-pack.js';
import { tempDir } from '../support/factory.js';

/**
 * A tar written onto media that fill up while members are still being streamed in: the write fails with the
 * media's own error (ENOSPC), never an unhandled rejection that ends the process.
 */
describe('writeTar onto media that fill up', () => {
  let stick = '';
  let mounted = false;
  before(async () => {
    stick = await tempDir('tar-pack-stick');
    const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', stick], { encoding: 'utf8' });
    mounted = mount.status === 0;
    // Only a machine that cannot mount may skip; CI can, so there it is a failure.
    if (!mounted) assert.notEqual(process.env['CI'], 'true', `cannot mount a tmpfs in CI: ${mount.stderr}`);
  });
  after(() => {
    if (mounted) spawnSync('umount', ['-l', stick]);
  });

  test('30 members of 100 KB onto 256 KiB: rejects with ENOSPC, and no rejection goes unhandled', async (t) => {
    if (!mounted) {
      t.skip('this machine cannot mount a tmpfs');
      return;
    }
    const sources = await tempDir('tar-pack-sources');
    const members: TarMember[] = [];
    for (let index = 0; index < 30; index++) {
      const source = path.join(sources, `member-${index}`);
      await fs.writeFile(source, randomBytes(100_000));
      members.push({ type: 'file-from', name: `member-${index}`, source });
    }
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      for (let round = 0; round < 8; round++) {
        const file = path.join(stick, `round-${round}.tar`);
        await assert.rejects(writeTar(file, members, { gzip: round % 2 === 1 }), (error: NodeJS.ErrnoException) => {
          assert.equal(error.code, 'ENOSPC', String(error));
          return true;
        });
        await fs.rm(file, { force: true });
        // Unhandled rejections are reported after the microtask queue drains: give them that turn.
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    assert.deepEqual(unhandled.map(String), []);
  });
});
