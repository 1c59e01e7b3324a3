import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ferryProcess } from '../support/cli.js';
import { buildFactory, tempDir, type TestFactory } from '../support/factory.js';
import { hashTree } from '../support/tree-hash.js';

/**
 * How export writes the media: ostree copies the objects without a sync of its own, the blobs are written without
 * one either, and the whole bundle is flushed once (syncfs) before export says it is done. A flush that fails, or
 * media that fill up, end in 59 with the export undone.
 */
let factory: TestFactory;
before(async () => {
  factory = await buildFactory();
});

const which = (tool: string): string => {
  const found = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
  assert.ok(found.startsWith('/'), `${tool} is installed`);
  return found;
};

/**
 * Tools that log each call to `log`, then run the real tool; `failSync` makes sync fail as a stick that was pulled
 * out does.
 */
async function loggingTools(log: string, options: { failSync?: boolean } = {}): Promise<Record<string, string>> {
  const dir = await tempDir('logging-tools');
  for (const tool of ['ostree', 'sync']) {
    const real = which(tool);
    const body =
      tool === 'sync' && options.failSync === true
        ? `echo "sync: error syncing '$2': Input/output error" >&2\nexit 1`
        : `exec ${real} "$@"`;
    await fs.writeFile(path.join(dir, tool), `#!/bin/sh\necho "${tool} $*" >> ${log}\n${body}\n`, { mode: 0o755 });
  }
  return { PATH: `${dir}:${process.env['PATH'] ?? ''}` };
}

/** `ferry export` of v2 into `dst`, as its own process (the tools it runs come from `env`'s PATH). */
const exportTo = (dst: string, archive: 'tar' | undefined, env: Record<string, string> = {}) =>
  ferryProcess(
    [
      'export',
      '--repo',
      factory.repo.dir,
      factory.v2,
      dst,
      '--tag',
      'main',
      ...(archive ? ['--archive', archive] : []),
    ],
    env,
  );

const calls = async (log: string): Promise<string[]> => (await fs.readFile(log, 'utf8')).trim().split('\n');

describe('export writes the media once and flushes it once', () => {
  for (const archive of [undefined, 'tar'] as const) {
    test(`${archive ?? 'a directory'}: no sync per object; one flush of the media before "done"`, async () => {
      const parent = await tempDir('media-flush');
      const log = path.join(parent, 'calls.log');
      const dst = path.join(parent, archive === undefined ? 'stick' : 'stick.tar');
      const result = await exportTo(dst, archive, await loggingTools(log));
      assert.equal(result.code, 0, result.stderr);
      const seen = await calls(log);
      const pull = seen.findIndex((line) => / pull-local /.test(line));
      assert.ok(pull >= 0, `ostree pull-local ran: ${seen.join(' | ')}`);
      assert.match(seen[pull]!, /--disable-fsync/);
      const flushed = archive === undefined ? dst : `${dst}.partial`;
      const flushes = seen.filter((line) => line.startsWith('sync '));
      assert.deepEqual(flushes, [`sync -f ${flushed}`], 'exactly one flush, of the media');
      assert.ok(seen.indexOf(flushes[0]!) > pull, 'the flush comes after the copy');
      // The ref names the target on the stick, as before.
      if (archive === undefined)
        assert.equal(
          (await fs.readFile(path.join(dst, 'ostree_repo', 'refs', 'heads', factory.v2), 'utf8')).trim(),
          factory.commits[factory.v2],
        );
    });

    test(`${archive ?? 'a directory'}: a flush that fails ends in 59 and leaves nothing on the media`, async () => {
      const parent = await tempDir('media-flush-fails');
      const log = path.join(parent, 'calls.log');
      const dst = path.join(parent, archive === undefined ? 'stick' : 'stick.tar');
      // The whole factory: its objects, and its versions (targets, snapshot, timestamp, bundle version), which move
      // only when an export succeeds.
      const factoryBefore = await hashTree(factory.repo.dir);
      const result = await exportTo(dst, archive, await loggingTools(log, { failSync: true }));
      assert.equal(result.code, 59, result.stderr);
      assert.match(result.stderr, /could not be flushed to the media .*Input\/output error.*; the export was undone/);
      assert.equal(result.stderr.trim().split('\n').length, 1, 'one line');
      const left = (await fs.readdir(parent)).filter((name) => name !== 'calls.log');
      if (archive === undefined) {
        assert.deepEqual(left, ['stick']);
        assert.deepEqual(await fs.readdir(dst), [], 'the stick is left empty');
      } else assert.deepEqual(left, [], 'no archive, no partial file');
      assert.equal(await hashTree(factory.repo.dir), factoryBefore, 'the factory repo is byte-identical');
    });
  }
});

describe('export onto a stick that fills up', () => {
  let stick = '';
  let mounted = false;
  before(async () => {
    stick = await tempDir('small-stick');
    // Big enough for the metadata, far too small for the rootfs (busybox alone is 2 MiB).
    const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', stick], { encoding: 'utf8' });
    mounted = mount.status === 0;
    // Only a machine that cannot mount may skip; CI can, so there it is a failure.
    if (!mounted) assert.notEqual(process.env['CI'], 'true', `cannot mount a tmpfs in CI: ${mount.stderr}`);
  });
  after(() => {
    if (mounted) spawnSync('umount', ['-l', stick]);
  });

  for (const archive of [undefined, 'tar'] as const) {
    test(`${archive ?? 'a directory'}: 59 with a one-line reason, and the stick is left as it was`, async (t) => {
      if (!mounted) {
        t.skip('this machine cannot mount a tmpfs');
        return;
      }
      for (const name of await fs.readdir(stick)) await fs.rm(path.join(stick, name), { recursive: true });
      const dst = path.join(stick, archive === undefined ? 'bundle' : 'bundle.tar');
      const factoryBefore = await hashTree(factory.repo.dir);
      const result = await exportTo(dst, archive);
      assert.equal(result.code, 59, result.stderr);
      assert.match(result.stderr, /no space left while the bundle was written .*; the export was undone/);
      assert.equal(result.stderr.trim().split('\n').length, 1, 'one line');
      const left = await fs.readdir(stick);
      if (archive === undefined) {
        assert.deepEqual(left, ['bundle']);
        assert.deepEqual(await fs.readdir(dst), []);
      } else assert.deepEqual(left, []);
      assert.equal(await hashTree(factory.repo.dir), factoryBefore, 'no factory version moved');
    });
  }
});
