import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { exportBundle } from '../../src/bundle/workstation/export.js';
import { FerryError } from '../../src/errors.js';
import type { ByteProgress, ProgressEvent } from '../../src/progress.js';
import { exitCodeOf } from '../../src/exit-codes.js';
import {
  checkFitsMedia,
  FAT32_MAX_FILE_BYTES,
  probeMediaFilesystem,
  type MediaFilesystem,
} from '../../src/util/media-filesystem.js';
import { buildAppsFactory, type AppsFactory } from '../support/apps-factory.js';
import { cli } from '../support/cli.js';
import { mountExfatStick, type ExfatStick } from '../support/exfat-stick.js';
import { buildFactory, tempDir, type TestFactory } from '../support/factory.js';
import { makeDevice } from '../support/sim-device.js';
import { hashTree } from '../support/tree-hash.js';

/**
 * Technicians carry FAT32 and exFAT sticks: no hard links, no rename flags, FAT32 no file of 4 GiB or more. Export
 * writes such media with create, write and plain rename; install reads them and writes its reports back. exFAT is a
 * real filesystem here (exfat-fuse on a loop device); FAT32's size limit is checked through the filesystem probe
 * that export takes, standing in for statfs on a FAT32 stick.
 */
let factory: TestFactory;
let appsFactory: AppsFactory;
let stick: ExfatStick | undefined;

before(async () => {
  [factory, appsFactory, stick] = await Promise.all([buildFactory(), buildAppsFactory(), mountExfatStick(64)]);
});
after(() => stick?.unmount());

/** The stick's mount point; outside CI a machine that cannot mount it skips (mountExfatStick fails CI itself). */
function exfat(t: { skip(message: string): void }): string | undefined {
  if (stick === undefined) t.skip('this machine cannot mount an exFAT stick');
  return stick?.mountPoint;
}

const exportArgs = (repo: string, target: string, dst: string, ...extra: string[]) => [
  'export',
  '--repo',
  repo,
  target,
  dst,
  '--tag',
  'main',
  ...extra,
];

describe('an exFAT stick (exfat-fuse)', () => {
  test('is told apart: exFAT, without hard links, no file size limit', async (t) => {
    const mount = exfat(t);
    if (mount === undefined) return;
    const media = await probeMediaFilesystem(path.join(mount, 'not-yet-there'));
    assert.deepEqual(media, { name: 'exFAT (FUSE)', hardLinks: false });
    assert.equal((await probeMediaFilesystem(await tempDir('ext'))).hardLinks, true);
  });

  test('export of a directory, a second target, a tuf/ refresh and a delta: each 0, and the bundle verifies', async (t) => {
    const mount = exfat(t);
    if (mount === undefined) return;
    const dst = path.join(mount, 'bundle');
    const first = await cli(...exportArgs(factory.repo.dir, factory.v2, dst));
    assert.equal(first.code, 0, first.stderr);
    const second = await cli(...exportArgs(factory.repo.dir, factory.v1, dst, '--allow-multiple-targets'));
    assert.equal(second.code, 0, second.stderr);
    const refreshed = await cli(...exportArgs(factory.repo.dir, factory.v1, dst, '--tuf-only'));
    assert.equal(refreshed.code, 0, refreshed.stderr);
    const verified = await cli('verify', dst, '--json');
    assert.equal(verified.code, 0, verified.stderr);
    assert.deepEqual(
      JSON.parse(verified.stdout)
        .targets.map((target: { name: string }) => target.name)
        .sort(),
      [factory.v1, factory.v2],
    );
    const delta = path.join(mount, 'delta');
    const fromBase = await cli(...exportArgs(factory.repo.dir, factory.v2, delta, '--from', factory.v1));
    assert.equal(fromBase.code, 0, fromBase.stderr);
    assert.equal((await cli('show', delta)).code, 0);
    // The plain-write copy is pulled beside the factory first: nothing of it stays there.
    assert.deepEqual(
      (await fs.readdir(factory.repo.dir)).filter((name) => name.startsWith('.export-')),
      [],
    );
    await fs.rm(dst, { recursive: true });
    await fs.rm(delta, { recursive: true });
  });

  test('export of a target with apps, as a directory and as a tar and a zip: 0, and every blob verifies', async (t) => {
    const mount = exfat(t);
    if (mount === undefined) return;
    for (const [name, extra] of [
      ['apps', []],
      ['apps.tar', ['--archive', 'tar']],
      ['apps.zip', ['--archive', 'zip']],
    ] as const) {
      const dst = path.join(mount, name);
      const result = await cli(...exportArgs(appsFactory.repo.dir, appsFactory.targets.mixed, dst, ...extra));
      assert.equal(result.code, 0, `${name}: ${result.stderr}`);
      const verified = await cli('verify', dst, '--json');
      assert.equal(verified.code, 0, `${name}: ${verified.stderr}`);
      assert.ok(JSON.parse(verified.stdout).blobsChecked > 0);
      await fs.rm(dst, { recursive: true });
    }
  });

  test('install and run from the stick, as a directory and as a tar: reports written back to it', async (t) => {
    const mount = exfat(t);
    if (mount === undefined) return;
    for (const [name, extra] of [
      ['bundle', []],
      ['bundle.tar', ['--archive', 'tar']],
    ] as const) {
      const dst = path.join(mount, name);
      assert.equal((await cli(...exportArgs(factory.repo.dir, factory.v2, dst, ...extra))).code, 0);
      const device = await makeDevice(factory, factory.v1);
      const install = await cli('install', '--config', device.configDir, '--src-dir', dst, '--json');
      assert.equal(install.code, 100, `${name}: ${install.stderr}`);
      const report = JSON.parse(install.stdout).report as string;
      assert.ok(report.startsWith(`${mount}/`), `${name}: the report is on the stick (${report})`);
      assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
      const run = await cli('run', '--config', device.configDir);
      assert.equal(run.code, 0, `${name}: ${run.stderr}`);
      // Beside a single-file bundle, in the bundle directory otherwise.
      const media = extra.length === 0 ? dst : mount;
      const reports = await cli('reports', media, '--repo', factory.repo.dir, '--json');
      assert.equal(reports.code, 0, `${name}: ${reports.stderr}`);
      assert.deepEqual(
        JSON.parse(reports.stdout).rows.map((row: { step: string; valid: boolean }) => [row.step, row.valid]),
        [
          ['install', true],
          ['run', true],
        ],
      );
      await fs.rm(dst, { recursive: true });
      await fs.rm(path.join(mount, 'reports'), { recursive: true, force: true });
    }
  });

  test('the rootfs progress follows the copy onto the stick: it grows to its total and never falls', async (t) => {
    const mount = exfat(t);
    if (mount === undefined) return;
    const dst = path.join(mount, 'progress');
    const events: ProgressEvent[] = [];
    await exportBundle(factory.repo, {
      targetName: factory.v2,
      destination: dst,
      tag: 'main',
      type: 'ci',
      expiresInDays: 30,
      progress: (event) => events.push(event),
    });
    const rootfs = events.filter((event): event is ByteProgress => event.phase === 'rootfs');
    assert.ok(rootfs.length >= 2, JSON.stringify(events));
    const total = rootfs[0]!.total;
    assert.ok(total > 1024 * 1024 * 0.9, 'the total is what goes onto the stick: busybox alone is about 1 MiB');
    for (let index = 1; index < rootfs.length; index++) {
      assert.equal(rootfs[index]!.total, total);
      assert.ok(rootfs[index]!.bytes >= rootfs[index - 1]!.bytes, JSON.stringify(rootfs));
    }
    assert.equal(rootfs.at(-1)!.bytes, total);
    await fs.rm(dst, { recursive: true });
  });

  test('bundle pack of a directory on the stick into a tar and a zip beside it: 0, and each verifies', async (t) => {
    const mount = exfat(t);
    if (mount === undefined) return;
    const dst = path.join(mount, 'bundle');
    assert.equal((await cli(...exportArgs(factory.repo.dir, factory.v2, dst))).code, 0);
    for (const name of ['bundle.tar', 'bundle.zip']) {
      const packed = await cli('bundle', 'pack', dst, path.join(mount, name));
      assert.equal(packed.code, 0, `${name}: ${packed.stderr}`);
      const verified = await cli('verify', path.join(mount, name));
      assert.equal(verified.code, 0, `${name}: ${verified.stderr}`);
      await fs.rm(path.join(mount, name));
    }
    await fs.rm(dst, { recursive: true });
  });

  test('a stick that fills up: 59 with a one-line reason, and the stick is left as it was', async (t) => {
    const mount = exfat(t);
    if (mount === undefined) return;
    // Leave 512 KiB free: room for the metadata, not for the rootfs (busybox alone is about 1 MiB).
    const { bavail, bsize } = await fs.statfs(mount);
    const filler = path.join(mount, 'filler');
    const handle = await fs.open(filler, 'w');
    const chunk = Buffer.alloc(1024 * 1024, 1);
    for (let left = bavail * bsize - 512 * 1024; left > 0; left -= chunk.length)
      await handle.write(chunk, 0, Math.min(left, chunk.length));
    await handle.close();
    try {
      for (const [name, extra] of [
        ['bundle', []],
        ['bundle.tar', ['--archive', 'tar']],
      ] as const) {
        const before = await hashTree(mount);
        const result = await cli(...exportArgs(factory.repo.dir, factory.v2, path.join(mount, name), ...extra));
        assert.equal(result.code, 59, `${name}: ${result.stderr}`);
        assert.match(result.stderr, /no space left while the bundle was written .*; the export was undone/);
        assert.equal(result.stderr.trim().split('\n').length, 1, 'one line');
        await fs.rm(path.join(mount, name), { recursive: true, force: true });
        assert.equal(await hashTree(mount), before, `${name}: the stick is left as it was`);
      }
    } finally {
      await fs.rm(filler);
    }
  });
});

/** A FAT32 stick as statfs tells it, with a limit the test's files can cross (the real one is 4 GiB - 1 B). */
const fat32 = (maxFileBytes: number) => async (): Promise<MediaFilesystem> => ({
  name: 'FAT32 (vfat)',
  hardLinks: false,
  maxFileBytes,
});

async function refusedOnFat32(
  destination: string,
  options: { archive?: 'tar' | 'zip'; maxFileBytes: number; app?: boolean },
): Promise<FerryError> {
  const source = options.app === true ? appsFactory : undefined;
  const error = await exportBundle(source?.repo ?? factory.repo, {
    targetName: source?.targets.mixed ?? factory.v2,
    destination,
    tag: 'main',
    type: 'ci',
    expiresInDays: 30,
    archive: options.archive,
    filesystemProbe: fat32(options.maxFileBytes),
  }).then(
    () => assert.fail('export went ahead'),
    (failure: unknown) => failure,
  );
  assert.ok(error instanceof FerryError, String(error));
  assert.equal(error.outcome, 'MEDIA_FILE_TOO_LARGE', error.message);
  return error;
}

describe('a FAT32 stick: a file over its limit is refused before it is written (61)', () => {
  test('the limit is 4 GiB - 1 B, and 61 is its code', () => {
    const media = { name: 'FAT32 (vfat)', hardLinks: false, maxFileBytes: FAT32_MAX_FILE_BYTES };
    checkFitsMedia(media, '/media/stick', [{ name: 'fits', bytes: 4 * 1024 ** 3 - 1 }]);
    assert.throws(
      () => checkFitsMedia(media, '/media/stick', [{ name: 'big.tar', bytes: 4 * 1024 ** 3 }]),
      /^FerryError: big\.tar would be 4294967296 B \(4\.0 GiB\), more than the 4294967295 B a file can have on FAT32 \(vfat\) \(\/media\/stick\): use an exFAT \(or ext4\) stick; nothing was written$/,
    );
    assert.equal(exitCodeOf('MEDIA_FILE_TOO_LARGE'), 61);
  });

  test('a directory whose rootfs holds an object over the limit: refused, the stick left empty', async () => {
    const stickDir = await tempDir('fat32-dir');
    const dst = path.join(stickDir, 'bundle');
    const factoryBefore = await hashTree(path.join(factory.repo.dir, 'ostree_repo'));
    // busybox, the sim rootfs's largest file, is about 1 MiB even compressed.
    const error = await refusedOnFat32(dst, { maxFileBytes: 256 * 1024 });
    assert.match(error.message, /^ostree_repo\/objects\/[0-9a-f]{2}\/[0-9a-f]{62}\.filez would be \d+ B/);
    assert.match(
      error.message,
      /a file can have on FAT32 \(vfat\) .*: use an exFAT \(or ext4\) stick; nothing was written$/,
    );
    assert.deepEqual(await fs.readdir(dst).catch(() => []), [], 'nothing on the stick');
    assert.deepEqual(
      (await fs.readdir(factory.repo.dir)).filter((name) => name.startsWith('.export-')),
      [],
      'no scratch left beside the factory',
    );
    assert.equal(await hashTree(path.join(factory.repo.dir, 'ostree_repo')), factoryBefore);
  });

  test('a directory whose app holds a layer over the limit: refused before any blob is written', async () => {
    const dst = path.join(await tempDir('fat32-apps'), 'bundle');
    // The limit is the largest rootfs object: every object fits, the busybox layer (an uncompressed tar) does not.
    const largest = async (dir: string) => {
      let max = 0;
      for (const entry of await fs.readdir(dir, { recursive: true, withFileTypes: true }))
        if (entry.isFile()) max = Math.max(max, (await fs.stat(path.join(entry.parentPath, entry.name))).size);
      return max;
    };
    const limit = await largest(path.join(appsFactory.repo.dir, 'ostree_repo', 'objects'));
    assert.ok((await largest(path.join(appsFactory.repo.dir, 'apps', 'blobs'))) > limit);
    const error = await refusedOnFat32(dst, { maxFileBytes: limit, app: true });
    assert.match(error.message, /^apps\/blobs\/sha256\/[0-9a-f]{64} would be \d+ B/);
    assert.deepEqual(await fs.readdir(dst).catch(() => []), []);
  });

  test('an archive over the limit whose files fit: refused, and a bundle directory is suggested', async () => {
    const stickDir = await tempDir('fat32-tar');
    const dst = path.join(stickDir, 'bundle.tar');
    // The largest file (busybox, compressed) is about 1,031,000 B; the tar of the whole bundle about 1,075,000 B.
    const error = await refusedOnFat32(dst, { archive: 'tar', maxFileBytes: 1_050_000 });
    assert.match(error.message, new RegExp(`^${dst.replace(/[.]/g, '\\.')} would be \\d+ B`));
    assert.match(
      error.message,
      /FAT32 \(vfat\).*write the bundle as a directory, whose largest file fits; nothing was written$/,
    );
    assert.deepEqual(await fs.readdir(stickDir), [], 'no archive, no partial file');
  });

  test('an archive with a member over the limit: refused, and only another filesystem is suggested', async () => {
    const stickDir = await tempDir('fat32-zip');
    const error = await refusedOnFat32(path.join(stickDir, 'bundle.zip'), { archive: 'zip', maxFileBytes: 256 * 1024 });
    assert.match(
      error.message,
      /use an exFAT \(or ext4\) stick: its largest member, ostree_repo\/objects\/\S+, is over the limit itself/,
    );
    assert.deepEqual(await fs.readdir(stickDir), []);
  });

  test('under the limit, the plain-write path writes a bundle that verifies', async () => {
    const dst = path.join(await tempDir('fat32-ok'), 'bundle');
    await exportBundle(factory.repo, {
      targetName: factory.v2,
      destination: dst,
      tag: 'main',
      type: 'ci',
      expiresInDays: 30,
      filesystemProbe: fat32(FAT32_MAX_FILE_BYTES),
    });
    // No object on the stick shares an inode with the factory: they were copied, not linked.
    const objects = path.join(dst, 'ostree_repo', 'objects');
    for (const prefix of await fs.readdir(objects))
      for (const name of await fs.readdir(path.join(objects, prefix)))
        assert.equal((await fs.stat(path.join(objects, prefix, name))).nlink, 1);
    const verified = await cli('verify', dst);
    assert.equal(verified.code, 0, verified.stderr);
  });
});
