import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { addApp } from '../../src/apps/workstation/add-app.js';
import { BlobStore } from '../../src/apps/format/blob-store.js';
import { putBytes } from '../../src/apps/workstation/build-image.js';
import { MEDIA } from '../../src/apps/format/digest.js';
import { REF_NAME, writeImageLayout } from '../../src/apps/format/oci-layout.js';
import { exportBundle } from '../../src/bundle/workstation/export.js';
import { packBundleDirectory } from '../../src/bundle/workstation/pack-bundle.js';
import { FerryError } from '../../src/errors.js';
import { addTarget } from '../../src/repo/add-target.js';
import { FAT32_MAX_FILE_BYTES } from '../../src/util/media-filesystem.js';
import { cli } from '../support/cli.js';
import { compose } from '../support/apps-factory.js';
import { buildFactory, HARDWARE_ID, TAG, tempDir, type TestFactory } from '../support/factory.js';
import { assertRefused, makeDevice, statusOf, type TestDevice } from '../support/sim-device.js';

/**
 * Bundles and app blobs over 4 GiB, in a bundle directory and in a single-file tar. The layer is a sparse file: a
 * hole with real bytes at its start, on both sides of the 4 GiB mark and at its end, so that a size kept in 32 bits,
 * a wrapped offset or a truncated copy changes its digest. Every copy ferry makes of it (factory store, stick, tar,
 * unpacked tar, device store) must be sparse too, or the test would write tens of GiB. The layer is never loaded
 * into a container engine: its bytes are not a real filesystem layer, and staging is what has to cope with its size.
 */

const GiB = 1024 ** 3;
/** Past 4 GiB, and not a whole number of blocks, so that the tail of the copy is a partial block. */
const LAYER_SIZE = 4 * GiB + 3 * 1024 * 1024 + 123;
const MARKS: ReadonlyArray<{ offset: number; text: string }> = [
  { offset: 0, text: 'the first bytes of a big layer' },
  { offset: 1 * GiB + 77, text: 'one GiB in' },
  { offset: 4 * GiB - 9, text: 'across 4 GiB' },
  { offset: 4 * GiB + 5, text: 'just past 4 GiB' },
  { offset: LAYER_SIZE - 'the last bytes'.length, text: 'the last bytes' },
];
/** A byte inside the mark just past 4 GiB: what a tampered copy changes. */
const TAMPER_OFFSET = 4 * GiB + 7;
/** Real disk a copy of the layer may take: its marks, each rounded out to whole blocks, and some slack. */
const SPARSE_LIMIT = 16 * 1024 * 1024;

/** The digest of the layer, computed from what it is meant to hold, without reading any file. */
function expectedDigest(): string {
  const hash = createHash('sha256');
  const zeros = Buffer.alloc(1024 * 1024);
  let position = 0;
  const zerosUntil = (end: number) => {
    while (position < end) {
      const length = Math.min(zeros.length, end - position);
      hash.update(zeros.subarray(0, length));
      position += length;
    }
  };
  for (const mark of MARKS) {
    assert.ok(mark.offset >= position, 'marks in order, without overlaps');
    zerosUntil(mark.offset);
    hash.update(mark.text);
    position += Buffer.byteLength(mark.text);
  }
  assert.ok(position <= LAYER_SIZE, 'marks inside the layer');
  zerosUntil(LAYER_SIZE);
  return `sha256:${hash.digest('hex')}`;
}

async function writeSparseLayer(file: string): Promise<void> {
  const handle = await fs.open(file, 'wx');
  try {
    for (const mark of MARKS) await handle.write(Buffer.from(mark.text), 0, Buffer.byteLength(mark.text), mark.offset);
    await handle.truncate(LAYER_SIZE);
  } finally {
    await handle.close();
  }
}

/** Reads into one buffer: a fresh buffer per chunk of a 4 GiB file costs more than hashing it. */
async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  const handle = await fs.open(file, 'r');
  try {
    const buffer = Buffer.alloc(1024 * 1024);
    for (let position = 0; ;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      position += bytesRead;
    }
  } finally {
    await handle.close();
  }
  return `sha256:${hash.digest('hex')}`;
}

/** Size, real disk use and the marks of a copy of the layer, and with `digest` its digest (reading it all). */
async function assertLayerCopy(file: string, where: string, digest?: string): Promise<void> {
  const stat = await fs.stat(file);
  assert.equal(stat.size, LAYER_SIZE, `${where}: the whole length, not the length modulo 4 GiB`);
  assert.ok(stat.blocks * 512 <= SPARSE_LIMIT, `${where}: ${stat.blocks * 512} bytes on disk; the copy is not sparse`);
  await assertMarks(file, 0, where);
  if (digest !== undefined) assert.equal(await sha256Of(file), digest, `${where}: every byte copied`);
}

/** The marks of the layer, read where they belong in `file` (the layer itself, or a tar whose member starts at `base`). */
async function assertMarks(file: string, base: number, where: string): Promise<void> {
  const handle = await fs.open(file, 'r');
  try {
    for (const mark of MARKS) {
      const bytes = Buffer.alloc(Buffer.byteLength(mark.text));
      await handle.read(bytes, 0, bytes.length, base + mark.offset);
      assert.equal(bytes.toString(), mark.text, `${where}: the bytes at ${mark.offset}`);
    }
  } finally {
    await handle.close();
  }
}

/**
 * Reading a hole fills the page cache with zeros, 4 GiB per copy: copies this test has checked are removed, so that
 * the machine does not spend its time reclaiming memory.
 */
async function drop(file: string): Promise<void> {
  await fs.rm(file, { recursive: true, force: true });
}

/** The members of a plain tar, from its headers: name, where its data starts, and its size (octal or base-256). */
async function tarMembers(file: string): Promise<Array<{ name: string; offset: number; size: number }>> {
  const handle = await fs.open(file, 'r');
  const members = [];
  try {
    const header = Buffer.alloc(512);
    for (let position = 0; ;) {
      const { bytesRead } = await handle.read(header, 0, 512, position);
      if (bytesRead < 512 || header.every((byte) => byte === 0)) break;
      const field = header.subarray(124, 136);
      const size =
        field[0] === 0x80
          ? field.subarray(1).reduce((sum, byte) => sum * 256 + byte, 0)
          : parseInt(field.toString('latin1').replace(/[\0 ]+$/, ''), 8);
      const prefix = header.subarray(345, 500).toString('latin1').replace(/\0.*$/s, '');
      const name = header.subarray(0, 100).toString('latin1').replace(/\0.*$/s, '');
      members.push({ name: prefix === '' ? name : `${prefix}/${name}`, offset: position + 512, size });
      position += 512 + Math.ceil(size / 512) * 512;
    }
  } finally {
    await handle.close();
  }
  return members;
}

/** A copy that keeps the holes (cp finds them with SEEK_DATA), then one byte changed past the 4 GiB mark. */
async function tamperedCopy(source: string, file: (copy: string) => string, offset: number): Promise<string> {
  const copy = path.join(await tempDir('big-tampered'), path.basename(source));
  const cp = spawnSync('cp', ['-a', '--sparse=always', source, copy], { encoding: 'utf8' });
  assert.equal(cp.status, 0, cp.stderr);
  const handle = await fs.open(file(copy), 'r+');
  try {
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, offset);
    assert.notEqual(byte[0], 0, 'the changed byte is one of the marks');
    byte[0] = byte[0]! ^ 0x01;
    await handle.write(byte, 0, 1, offset);
  } finally {
    await handle.close();
  }
  return copy;
}

const blobPath = (root: string, digest: string) => path.join(root, 'apps', 'blobs', 'sha256', digest.slice(7));

let factory: TestFactory;
let layerDigest: string;
let target: string;
let bundleDir: string;
let bundleTar: string;

before(async () => {
  factory = await buildFactory();
  const work = await tempDir('big-layer');
  layerDigest = expectedDigest();
  const layout = path.join(work, 'image');
  const blobs = new BlobStore(path.join(layout, 'blobs'));
  await fs.mkdir(path.dirname(blobs.pathOf(layerDigest)), { recursive: true });
  await writeSparseLayer(blobs.pathOf(layerDigest));
  const config = await putBytes(
    blobs,
    MEDIA.ociConfig,
    Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Cmd: ['/bin/sh'] },
        rootfs: { type: 'layers', diff_ids: [layerDigest] },
      }),
    ),
  );
  const manifest = await putBytes(
    blobs,
    MEDIA.ociManifest,
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA.ociManifest,
        config,
        layers: [{ mediaType: MEDIA.ociLayerGzip, digest: layerDigest, size: LAYER_SIZE }],
      }),
    ),
  );
  await writeImageLayout(layout, { ...manifest, annotations: { [REF_NAME]: 'ferry.local/test/big:1' } });
  const composeDir = path.join(work, 'compose');
  await fs.mkdir(composeDir);
  await fs.writeFile(path.join(composeDir, 'docker-compose.yml'), compose('ferry.local/test/big:1', 'sleep 1000'));
  // Imported as `ferry app add` does: streamed into the factory's blob store and hashed on the way.
  const app = await addApp(factory.repo, { name: 'big', composeDir, images: [layout] });
  await drop(blobs.pathOf(layerDigest));
  target = (
    await addTarget(factory.repo, {
      name: 'sim-lmp',
      version: '10',
      hardwareIds: [HARDWARE_ID],
      tags: [TAG],
      commit: factory.commits[factory.v1]!,
      apps: [{ name: 'big', digest: app.digest }],
    })
  ).name;

  bundleDir = path.join(await tempDir('big-bundle'), 'stick');
  const exported = await cli('export', '--repo', factory.repo.dir, target, bundleDir, '--tag', TAG);
  assert.equal(exported.code, 0, exported.stderr);
  bundleTar = path.join(await tempDir('big-bundle'), 'stick.tar');
  const packed = await cli('export', '--repo', factory.repo.dir, target, bundleTar, '--tag', TAG, '--archive', 'tar');
  assert.equal(packed.code, 0, packed.stderr);
});

/** Installs `bundle` on a fresh device that runs v1 without apps: an apps-only update, staged but not run. */
async function installOnFreshDevice(bundle: string): Promise<TestDevice> {
  const device = await makeDevice(factory, factory.v1);
  const result = await cli('install', '--config', device.configDir, '--src-dir', bundle);
  assert.equal(result.code, 101, `stdout: ${result.stdout}\nstderr: ${result.stderr}`);
  const status = await statusOf(device);
  assert.equal(status['pending'].target.name, target);
  return device;
}

describe('bundles and app blobs over 4 GiB', () => {
  test('the factory store holds the imported layer whole and sparse', async () => {
    // Its digest was checked on the way in, and the stick's copy below is hashed whole.
    await assertLayerCopy(factory.repo.apps.blobs.pathOf(layerDigest), 'factory store');
  });

  test('export into a directory: the layer on the stick has its full size and digest, and stays sparse', async () => {
    await assertLayerCopy(blobPath(bundleDir, layerDigest), 'bundle directory', layerDigest);
  });

  test('export --archive tar: one member over 4 GiB, at its full size in the header, in a sparse tar', async () => {
    const stat = await fs.stat(bundleTar);
    assert.ok(stat.size > LAYER_SIZE, `the tar is ${stat.size} bytes`);
    assert.ok(stat.blocks * 512 <= 2 * SPARSE_LIMIT, `${stat.blocks * 512} bytes on disk; the tar is not sparse`);
    const member = (await tarMembers(bundleTar)).find(
      (entry) => entry.name === `apps/blobs/sha256/${layerDigest.slice(7)}`,
    );
    assert.ok(member, 'the layer is a member of the tar');
    assert.equal(member.size, LAYER_SIZE);
    // GNU tar reads the same header (and seeks over the data, so this is cheap).
    const listing = spawnSync('tar', ['--list', '--verbose', '--file', bundleTar], { encoding: 'utf8' });
    assert.equal(listing.status, 0, listing.stderr);
    const line = listing.stdout.split('\n').find((entry) => entry.endsWith(layerDigest.slice(7)));
    assert.match(line ?? '', new RegExp(`\\s${LAYER_SIZE}\\s`));
    // Its bytes in the tar are the layer's, the ones past 4 GiB included (the install below hashes them all).
    await assertMarks(bundleTar, member.offset, 'tar member');
  });

  test('install from the directory stages the layer on the device, whole and sparse', async () => {
    const device = await installOnFreshDevice(bundleDir);
    const staged = device.device.appStore.apps.blobs.pathOf(layerDigest);
    await assertLayerCopy(staged, 'device store', layerDigest);
    await drop(staged);
  });

  test('install from the tar unpacks and stages the layer, whole and sparse, and removes what it unpacked', async () => {
    const device = await installOnFreshDevice(bundleTar);
    const staged = device.device.appStore.apps.blobs.pathOf(layerDigest);
    await assertLayerCopy(staged, 'device store', layerDigest);
    await drop(staged);
    const unpackedBeside = path.dirname(device.device.paths.statusFile);
    const leftovers = (await fs.readdir(unpackedBeside)).filter((name) => name.startsWith('.bundle-'));
    assert.deepEqual(leftovers, []);
  });

  test('a layer changed past the 4 GiB mark is refused, from a directory and from a tar', async () => {
    const dir = await tamperedCopy(bundleDir, (copy) => blobPath(copy, layerDigest), TAMPER_OFFSET);
    await assertRefused(await makeDevice(factory, factory.v1), dir, 74, /hashes to sha256:[0-9a-f]{64}/);
    await drop(dir);

    const member = (await tarMembers(bundleTar)).find((entry) => entry.name.endsWith(layerDigest.slice(7)))!;
    const tar = await tamperedCopy(bundleTar, (copy) => copy, member.offset + TAMPER_OFFSET);
    await assertRefused(await makeDevice(factory, factory.v1), tar, 74, /hashes to sha256:[0-9a-f]{64}/);
    await drop(tar);
  });

  test('onto a FAT32 stick (its statfs type, through the probe): the layer over 4 GiB - 1 B is refused up front (61)', async () => {
    const fat32 = async () => ({ name: 'FAT32 (vfat)', hardLinks: false, maxFileBytes: FAT32_MAX_FILE_BYTES });
    const stick = await tempDir('fat32-big');
    const refused = await exportBundle(factory.repo, {
      targetName: target,
      destination: path.join(stick, 'bundle'),
      tag: TAG,
      type: 'ci',
      expiresInDays: 30,
      filesystemProbe: fat32,
    }).then(
      () => assert.fail('export went ahead'),
      (error: unknown) => error,
    );
    assert.ok(refused instanceof FerryError && refused.outcome === 'MEDIA_FILE_TOO_LARGE', String(refused));
    assert.equal(
      refused.message,
      `apps/blobs/sha256/${layerDigest.slice(7)} would be ${LAYER_SIZE} B (4.0 GiB), more than the ${FAT32_MAX_FILE_BYTES} B a file can have on FAT32 (vfat) (${path.join(stick, 'bundle', 'apps')}): use an exFAT (or ext4) stick; nothing was written`,
    );
    assert.deepEqual(await fs.readdir(path.join(stick, 'bundle')).catch(() => []), []);

    const packed = await packBundleDirectory(bundleDir, path.join(stick, 'bundle.tar'), {
      filesystemProbe: fat32,
    }).then(
      () => assert.fail('pack went ahead'),
      (error: unknown) => error,
    );
    assert.ok(packed instanceof FerryError && packed.outcome === 'MEDIA_FILE_TOO_LARGE', String(packed));
    assert.match(packed.message, /its largest member, apps\/blobs\/sha256\/[0-9a-f]{64}, is over the limit itself/);
    assert.deepEqual(await fs.readdir(stick), ['bundle']);
  });

  test('memory stays bounded: no copy held a whole layer', () => {
    // maxRSS is in KiB. Every export and install above ran in this process.
    const peak = process.resourceUsage().maxRSS * 1024;
    assert.ok(peak < 1 * GiB, `peak resident memory ${peak} bytes`);
  });
});
