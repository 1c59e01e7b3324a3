import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { addTarget } from '../../src/repo/add-target.js';
import { commitSimRootfs } from '../../src/sim/rootfs.js';
import { treeBytes } from '../../src/util/free-space.js';
import { cli } from '../support/cli.js';
import { buildFactory, exportTo, HARDWARE_ID, TAG, tempDir, type TestFactory } from '../support/factory.js';
import { makeDevice, openTestDevice, statusOf } from '../support/sim-device.js';
import { buildAppsFactory } from '../support/apps-factory.js';
import { PrivateDockerd } from '../support/dockerd.js';
import { createSimDevice } from '../../src/sim/sim-device.js';

/** Offline delta bundles: only what a target adds to its base; installed on a device at the base, refused elsewhere. */

let factory: TestFactory;
let v5: string;
before(async () => {
  factory = await buildFactory();
  // Version 5: version 2's rootfs plus one small "package".
  const build = path.join(await tempDir('delta-build'), 'build');
  await commitSimRootfs({ repo: build, branch: 'test/v5', version: '5' });
  v5 = (
    await addTarget(factory.repo, {
      name: 'sim-lmp',
      version: '5',
      hardwareIds: [HARDWARE_ID],
      tags: [TAG],
      ref: 'test/v5',
      ostreeRepo: build,
    })
  ).name;
});

describe('delta bundles (export --from)', () => {
  test('the delta is a small part of the full bundle, records its base, and verifies', async () => {
    const full = await exportTo(factory, v5);
    const delta = path.join(await tempDir('delta'), 'bundle');
    const result = await cli('export', v5, delta, '--repo', factory.repo.dir, '--tag', TAG, '--from', factory.v2);
    assert.equal(result.code, 0, result.stderr);
    // The base's objects, which the check pulls the delta on top of, never touch the media.
    assert.deepEqual(await fs.readdir(path.dirname(delta)), ['bundle']);
    const fullObjects = await treeBytes(path.join(full, 'ostree_repo', 'objects'));
    const deltaObjects = await treeBytes(path.join(delta, 'ostree_repo', 'objects'));
    assert.ok(deltaObjects <= 0.05 * fullObjects, `delta ${deltaObjects} B of ${fullObjects} B`);
    const signed = JSON.parse(await fs.readFile(path.join(delta, 'tuf', 'bundle-targets.json'), 'utf8')).signed;
    assert.deepEqual(signed['x-ferry-bundle'].base, { target: factory.v2, commit: factory.commits[factory.v2] });
    const verified = await cli('verify', delta);
    assert.equal(verified.code, 0, verified.stderr);
    const shown = await cli('show', delta);
    assert.match(shown.stdout, new RegExp(`a delta on top of ${factory.v2} \\(commit [0-9a-f]{12}\\)`));
  });

  test('a delta fits a stick too small for the whole target: only what the base lacks is ever written there', async (t) => {
    const full = await exportTo(factory, v5);
    const fullObjects = await treeBytes(path.join(full, 'ostree_repo', 'objects'));
    const stick = await tempDir('small-stick');
    // A quarter of the full rootfs: the target's objects never all fit at once, the delta's easily do.
    const size = Math.floor(fullObjects / 4 / 4096) * 4096;
    const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', stick], { encoding: 'utf8' });
    assert.equal(mount.status, 0, `cannot mount a tmpfs: ${mount.stderr}`);
    t.after(() => spawnSync('umount', [stick]));
    const delta = path.join(stick, 'bundle');
    const result = await cli('export', v5, delta, '--repo', factory.repo.dir, '--tag', TAG, '--from', factory.v2);
    assert.equal(result.code, 0, result.stderr);
    assert.ok((await treeBytes(delta)) < size, `the delta fills ${await treeBytes(delta)} B of ${size} B`);
    assert.equal((await cli('verify', delta)).code, 0);
  });

  test('installed on a device at the base: 100, reboot, run 0', async () => {
    const delta = path.join(await tempDir('delta-install'), 'bundle');
    assert.equal(
      (await cli('export', v5, delta, '--repo', factory.repo.dir, '--tag', TAG, '--from', factory.v2)).code,
      0,
    );
    const device = await makeDevice(factory, factory.v2);
    const install = await cli('install', '--config', device.configDir, '--src-dir', delta);
    assert.equal(install.code, 100, install.stderr);
    assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
    const run = await cli('run', '--config', device.configDir);
    assert.equal(run.code, 0, run.stderr);
    assert.equal((await statusOf(device))['current'].name, v5);
  });

  test('refused with 8 on a device at another target, naming the base it needs; nothing written', async () => {
    const delta = path.join(await tempDir('delta-refuse'), 'bundle');
    assert.equal(
      (await cli('export', v5, delta, '--repo', factory.repo.dir, '--tag', TAG, '--from', factory.v2)).code,
      0,
    );
    const device = await makeDevice(factory, factory.v1);
    const before = await device.fingerprint();
    const refused = await cli('install', '--config', device.configDir, '--src-dir', delta);
    assert.equal(refused.code, 8, refused.stderr);
    assert.match(refused.stderr, new RegExp(`delta bundle on top of target "${factory.v2}"`));
    assert.equal(refused.stderr.trimEnd().split('\n').length, 1);
    assert.equal(await device.fingerprint(), before);
  });

  test('an object of the delta changed: verify says 70', async () => {
    const delta = path.join(await tempDir('delta-broken'), 'bundle');
    assert.equal(
      (await cli('export', v5, delta, '--repo', factory.repo.dir, '--tag', TAG, '--from', factory.v2)).code,
      0,
    );
    const objects = path.join(delta, 'ostree_repo', 'objects');
    const files: string[] = [];
    for (const prefix of await fs.readdir(objects))
      for (const name of await fs.readdir(path.join(objects, prefix))) files.push(path.join(objects, prefix, name));
    const file = files.find((candidate) => candidate.endsWith('.dirtree')) ?? files[0]!;
    const bytes = await fs.readFile(file);
    bytes[bytes.length - 1] ^= 0x01;
    await fs.writeFile(file, bytes);
    const verified = await cli('verify', delta);
    assert.equal(verified.code, 70, verified.stderr);
  });

  test('--from an unknown target: 42, nothing written', async () => {
    const delta = path.join(await tempDir('delta-unknown'), 'bundle');
    const result = await cli('export', v5, delta, '--repo', factory.repo.dir, '--tag', TAG, '--from', 'nope-1');
    assert.equal(result.code, 42, result.stderr);
    await assert.rejects(fs.access(path.join(delta, 'tuf')));
  });
});

describe('delta bundles with apps', () => {
  test('layers the base apps have stay off the stick; a device at the base installs (101, run 0)', async (t) => {
    const apps = await buildAppsFactory();
    const daemon = await PrivateDockerd.start();
    t.after(() => daemon.stop());
    const full = path.join(await tempDir('apps-full'), 'bundle');
    const delta = path.join(await tempDir('apps-delta'), 'bundle');
    const args = (dst: string) => ['export', apps.targets.heartbeatV2, dst, '--repo', apps.repo.dir, '--tag', TAG];
    assert.equal((await cli(...args(full))).code, 0);
    const exported = await cli(...args(delta), '--from', apps.targets.base);
    assert.equal(exported.code, 0, exported.stderr);
    const blobs = async (bundle: string) => (await fs.readdir(path.join(bundle, 'apps', 'blobs', 'sha256'))).length;
    assert.ok((await blobs(delta)) < (await blobs(full)), 'the shared busybox layer is not on the delta stick');
    assert.ok(
      (await treeBytes(path.join(delta, 'apps'))) < 0.05 * (await treeBytes(path.join(full, 'apps'))),
      'the apps part of the delta is small',
    );

    const dir = path.join(await tempDir('apps-delta-device'), 'device');
    await createSimDevice(dir, apps.repo, {
      target: apps.targets.base,
      dockerHost: daemon.host,
      testingWindowSeconds: 1,
    });
    const device = await openTestDevice(dir);
    const install = await cli('install', '--config', device.configDir, '--src-dir', delta);
    assert.equal(install.code, 101, install.stderr);
    await daemon.restart();
    const run = await cli('run', '--config', device.configDir);
    assert.equal(run.code, 0, run.stderr);
    assert.equal((await statusOf(device))['current'].name, apps.targets.heartbeatV2);
  });
});
