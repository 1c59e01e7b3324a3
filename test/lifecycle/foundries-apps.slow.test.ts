import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { addApp } from '../../src/apps/workstation/add-app.js';
import { hexOf } from '../../src/apps/format/digest.js';
import { addTarget } from '../../src/repo/add-target.js';
import { createSimDevice } from '../../src/sim/sim-device.js';
import { compose } from '../support/apps-factory.js';
import { cli } from '../support/cli.js';
import { PrivateDockerd } from '../support/dockerd.js';
import { exportTo, HARDWARE_ID, TAG, tempDir } from '../support/factory.js';
import { buildFioctlFactory, type FioctlFactory } from '../support/fioctl-factory.js';
import { openTestDevice, statusOf } from '../support/sim-device.js';

/**
 * The apps of a fioctl factory, on a real dockerd: their manifests are in compose-publish's form (the one
 * aktualizr-lite reads), which lists no images, so the device finds each image through the compose file the signed
 * archive carries. The app starts when the device is made, and a newer version of it takes over after an install,
 * a reboot and `run`.
 */

let factory: FioctlFactory;
let helloV2: string;
let appUpdate: string;
before(async () => {
  factory = await buildFioctlFactory();
  const composeDir = path.join(await tempDir('fio-hello-2'), 'compose');
  await fs.mkdir(composeDir);
  await fs.writeFile(
    path.join(composeDir, 'docker-compose.yml'),
    compose('ferry.local/test/hello:1', 'echo 2 > /data/version; trap "exit 0" TERM; while true; do sleep 1; done'),
  );
  const imageDir = path.join(path.dirname(factory.repo.dir), 'image');
  helloV2 = (await addApp(factory.repo, { name: 'hello', composeDir, images: [imageDir] })).digest;
  appUpdate = (
    await addTarget(factory.repo, {
      name: 'fio-lmp',
      version: '4',
      hardwareIds: [HARDWARE_ID],
      tags: [TAG],
      ref: 'rootfs/b',
      ostreeRepo: factory.build,
      apps: [{ name: 'hello', digest: helloV2 }],
    })
  ).name;
});

describe('a fioctl factory’s compose-publish apps on a real dockerd', () => {
  test('the app runs on the new device; a newer version of it runs after install 100, reboot and run 0', async (t) => {
    const manifest = JSON.parse(
      await fs.readFile(
        path.join(factory.repo.dir, 'apps', 'hello', hexOf(factory.appDigest), 'manifest.json'),
        'utf8',
      ),
    );
    assert.deepEqual(manifest.annotations, { 'compose-app': 'v1' });
    assert.equal(manifest.images, undefined, 'compose-publish lists no images');

    const daemon = await PrivateDockerd.start();
    t.after(() => daemon.stop());
    const dir = path.join(await tempDir('fio-apps-device'), 'device');
    await createSimDevice(dir, factory.repo, {
      target: factory.targets.v1,
      dockerHost: daemon.host,
      testingWindowSeconds: 1,
    });
    const device = await openTestDevice(dir);
    assert.deepEqual(
      daemon.running().map((line) => line.split(' ')[0]),
      ['hello_main_1'],
    );

    const install = await cli('install', '--config', device.configDir, '--src-dir', await exportTo(factory, appUpdate));
    assert.equal(install.code, 100, install.stderr);
    assert.equal((await cli('sim', 'reboot', dir)).code, 0);
    const run = await cli('run', '--config', device.configDir);
    assert.equal(run.code, 0, run.stderr);
    assert.equal((await statusOf(device)).current?.name, appUpdate);
    assert.deepEqual(
      daemon.running().map((line) => line.split(' ')[0]),
      ['hello_main_1'],
    );
    assert.equal(
      daemon.docker('exec', 'hello_main_1', 'cat', '/data/version'),
      '2\n',
      'the new version of the app runs',
    );
    assert.deepEqual(
      await fs.readdir(path.join(device.device.paths.appStore, 'hello')).then((names) => names.sort()),
      [hexOf(factory.appDigest), hexOf(helloV2)].sort(),
    );
  });
});
