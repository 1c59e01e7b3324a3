import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { addApp } from '../../src/apps/workstation/add-app.js';
import { buildImage, busyboxLayer } from '../../src/apps/workstation/build-image.js';
import { exportBundle } from '../../src/bundle/workstation/export.js';
import { addTarget } from '../../src/repo/add-target.js';
import { initFactoryRepo, type FactoryRepo } from '../../src/repo/factory-repo.js';
import { commitSimRootfs } from '../../src/sim/rootfs.js';
import { createSimDevice } from '../../src/sim/sim-device.js';
import { compose } from '../support/apps-factory.js';
import { cli, startFerryProcess, waitUntilStopped } from '../support/cli.js';
import { PrivateDockerd } from '../support/dockerd.js';
import { HARDWARE_ID, TAG, tempDir } from '../support/factory.js';
import { openTestDevice, statusOf, type TestDevice } from '../support/sim-device.js';

/**
 * The device's storage on a small filesystem of its own (a size-limited tmpfs the test mounts): too little space is
 * refused (60) before anything is written; space taken away in the middle of the copy (the process paused at a
 * step while the test fills the disk) ends in a clean 60 with nothing kept; once space is back the update goes
 * through.
 */

const MOUNT_SIZE = 96 * 1024 * 1024;
const BULK_BYTES = 6 * 1024 * 1024;

let mountPoint = '';
let mounted = false;
let repo: FactoryRepo;
let bundle = '';
let daemon: PrivateDockerd;
const targets = { small: '', bulky: '' };

before(async () => {
  mountPoint = await tempDir('small-fs');
  const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${MOUNT_SIZE}`, 'tmpfs', mountPoint], {
    encoding: 'utf8',
  });
  mounted = mount.status === 0;
  if (!mounted) {
    // Only a machine that cannot mount may skip; CI can, so there it is a failure.
    assert.notEqual(process.env['CI'], 'true', `cannot mount a tmpfs in CI: ${mount.stderr}`);
    return;
  }
  const dir = await tempDir('bulk-factory');
  repo = await initFactoryRepo(path.join(dir, 'repo'), { rootExpiresInDays: 365, factory: 'test' });
  const build = path.join(dir, 'build');
  const bulkFile = path.join(dir, 'bulk.bin');
  await fs.writeFile(bulkFile, randomBytes(BULK_BYTES));
  await commitSimRootfs({ repo: build, branch: 'rootfs/small', version: '1' });
  // Random bytes do not compress: the rootfs and the image each carry BULK_BYTES to copy.
  await commitSimRootfs({ repo: build, branch: 'rootfs/bulky', version: '2', busybox: bulkFile });
  const image = await buildImage({
    ref: 'ferry.local/test/bulk:1',
    outDir: path.join(dir, 'image'),
    cmd: ['/bin/sh'],
    layers: [busyboxLayer(), [{ type: 'file-from', name: 'data/bulk', source: bulkFile }]],
  });
  assert.ok(image.digest);
  const composeDir = path.join(dir, 'compose');
  await fs.mkdir(composeDir);
  await fs.writeFile(
    path.join(composeDir, 'docker-compose.yml'),
    compose('ferry.local/test/bulk:1', 'trap "exit 0" TERM; while true; do sleep 1; done'),
  );
  const app = await addApp(repo, { name: 'bulk', composeDir, images: [path.join(dir, 'image')] });
  const target = async (version: string, ref: string, apps: Array<{ name: string; digest: string }>) =>
    (
      await addTarget(repo, {
        name: 'bulk-lmp',
        version,
        hardwareIds: [HARDWARE_ID],
        tags: [TAG],
        ref,
        ostreeRepo: build,
        apps,
      })
    ).name;
  targets.small = await target('1', 'rootfs/small', []);
  targets.bulky = await target('2', 'rootfs/bulky', [{ name: 'bulk', digest: app.digest }]);
  bundle = path.join(await tempDir('bulk-bundle'), 'bundle');
  await exportBundle(repo, { targetName: targets.bulky, destination: bundle, tag: TAG, type: 'ci', expiresInDays: 30 });
  daemon = await PrivateDockerd.start();
});

after(async () => {
  await daemon?.stop();
  if (mounted) spawnSync('umount', ['-l', mountPoint]);
});

let devices = 0;
async function deviceOnSmallFs(t: TestContext): Promise<TestDevice | undefined> {
  if (!mounted) {
    t.skip('this machine cannot mount a tmpfs');
    return undefined;
  }
  await fs.rm(path.join(mountPoint, 'filler'), { force: true });
  for (const name of await fs.readdir(mountPoint)) {
    spawnSync('chattr', ['-R', '-i', path.join(mountPoint, name)], { stdio: 'ignore' });
    await fs.rm(path.join(mountPoint, name), { recursive: true, force: true });
  }
  const dir = path.join(mountPoint, `device-${++devices}`);
  await createSimDevice(dir, repo, { target: targets.small, dockerHost: daemon.host, testingWindowSeconds: 1 });
  return openTestDevice(dir);
}

/** Takes the free space of the small filesystem down to `leave` bytes. */
async function fillLeaving(leave: number): Promise<void> {
  const stats = await fs.statfs(mountPoint);
  const free = stats.bavail * stats.bsize;
  const size = Math.max(0, free - leave);
  const result = spawnSync('fallocate', ['-l', String(size), path.join(mountPoint, 'filler')], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
}

async function completes(device: TestDevice): Promise<void> {
  await fs.rm(path.join(mountPoint, 'filler'), { force: true });
  const install = await cli('install', '--config', device.configDir, '--src-dir', bundle);
  assert.equal(install.code, 100, install.stderr);
  assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
  const run = await cli('run', '--config', device.configDir);
  assert.equal(run.code, 0, run.stderr);
  assert.equal((await statusOf(device))['current'].name, targets.bulky);
}

describe('disk full: the device storage on a small filesystem', () => {
  test('too little space: 60 before anything is written, device unchanged; with space back it installs', async (t) => {
    const device = await deviceOnSmallFs(t);
    if (device === undefined) return;
    await fillLeaving(BULK_BYTES);
    const before = await device.fingerprint();
    const result = await cli('install', '--config', device.configDir, '--src-dir', bundle);
    assert.equal(result.code, 60, result.stderr);
    assert.match(result.stderr, /^ferry: space required \d+ B, available \d+ B/);
    assert.equal(result.stderr.trimEnd().split('\n').length, 1);
    assert.equal(await device.fingerprint(), before, 'a refusal for space writes nothing');
    await assert.rejects(fs.access(device.device.paths.journalFile), 'not even the journal: no step began');
    assert.equal((await statusOf(device))['state'], 'WONTGO');
    await completes(device);
  });

  for (const step of ['install.apps-stage', 'install.rootfs-pull'] as const) {
    test(`space taken away at ${step}: 60, what was copied is removed, the next install works`, async (t) => {
      const device = await deviceOnSmallFs(t);
      if (device === undefined) return;
      const before = await device.fingerprint();
      const child = startFerryProcess(['install', '--config', device.configDir, '--src-dir', bundle], {
        FERRY_PAUSE_AT: step,
      });
      await waitUntilStopped(child.pid);
      await fillLeaving(256 * 1024);
      process.kill(child.pid, 'SIGCONT');
      const result = await child.result;
      assert.equal(result.code, 60, `${result.stdout}${result.stderr}`);
      assert.match(result.stderr, /filled up while the update was copied/);
      assert.equal(result.stderr.trimEnd().split('\n').length, 1);
      assert.equal(await device.fingerprint(), before, 'nothing of the failed copy is kept');
      const status = await statusOf(device);
      assert.equal(status['state'], 'WONTGO');
      assert.equal(status['pending'], null);
      await completes(device);
    });
  }
});
