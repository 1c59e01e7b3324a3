import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test, type TestContext } from 'node:test';
import { AppsDir } from '../../src/apps/format/apps-dir.js';
import { RENDERED_COMPOSE_FILE } from '../../src/apps/format/compose.js';
import { hexOf } from '../../src/apps/format/digest.js';
import { buildAppsFactory, type AppsFactory } from '../support/apps-factory.js';
import { cli } from '../support/cli.js';
import { exportTo, tempDir } from '../support/factory.js';
import { PrivateDockerd } from '../support/dockerd.js';
import { openTestDevice, statusOf as status, type TestDevice } from '../support/sim-device.js';
import { createSimDevice } from '../../src/sim/sim-device.js';

/**
 * Three tests at a time, each on its own device and private dockerd: a test spends most of its time waiting for an
 * engine to start, a testing window, containers to come back.
 */
const TESTS_AT_A_TIME = { concurrency: 3 } as const;

let factory: AppsFactory;
before(async () => {
  factory = await buildAppsFactory();
});

interface AppsDevice extends TestDevice {
  readonly daemon: PrivateDockerd;
}

/** A simulated device on `target`, with its own dockerd, its initial apps running. */
async function deviceOn(t: TestContext, target: string, testingWindowSeconds = 1): Promise<AppsDevice> {
  const daemon = await PrivateDockerd.start();
  t.after(() => daemon.stop());
  const dir = path.join(await tempDir('apps-device'), 'device');
  await createSimDevice(dir, factory.repo, { target, dockerHost: daemon.host, testingWindowSeconds });
  return { ...(await openTestDevice(dir)), daemon };
}

/** A fresh export each time: metadata versions only grow, as a device that saw a newer bundle requires. */
const bundleFor = (target: string): Promise<string> => exportTo(factory, target);

const heartbeatImage = (digest: string) => `heartbeat_main_1 ferry.local/test/heartbeat:sha256-${hexOf(digest)}`;

async function install(device: TestDevice, bundle: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return cli('install', '--config', device.configDir, '--src-dir', bundle);
}

async function run(device: TestDevice): Promise<{ code: number; stdout: string; stderr: string }> {
  return cli('run', '--config', device.configDir);
}

describe('compose apps on a real dockerd', TESTS_AT_A_TIME, () => {
  test("the initial target's app runs after sim create, and writes its heartbeat to a volume", async (t) => {
    const device = await deviceOn(t, factory.targets.base);
    assert.deepEqual(device.daemon.running(), [heartbeatImage(factory.images.v1)]);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const beat = device.daemon.docker('exec', 'heartbeat_main_1', 'cat', '/data/heartbeat');
    assert.match(beat, /^1\n/);
  });

  test('apps-only update: install 101, engine restart, run 0; the new image digest runs; state UPDATED', async (t) => {
    const device = await deviceOn(t, factory.targets.base);
    const bundle = await bundleFor(factory.targets.heartbeatV2);
    const deploymentsBefore = await device.device.sysroot.deployments();
    const result = await install(device, bundle);
    assert.equal(result.code, 101, result.stderr);
    assert.match(result.stdout, /restart the container engine/);
    assert.deepEqual(
      await device.device.sysroot.deployments(),
      deploymentsBefore,
      'no new deployment for an apps-only update',
    );
    assert.equal((await device.device.boot.env.read())['upgrade_available'], '0');
    assert.deepEqual(
      await fs.readdir(device.config.rebootSentinelDir).then((names) => names.filter((name) => name === 'need_reboot')),
      [],
    );

    await device.daemon.restart();
    const ran = await run(device);
    assert.equal(ran.code, 0, ran.stderr);
    assert.deepEqual(device.daemon.running(), [heartbeatImage(factory.images.v2)]);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.match(device.daemon.docker('exec', 'heartbeat_main_1', 'cat', '/data/heartbeat'), /^2\n/);
    const after = await status(device);
    assert.equal(after['state'], 'UPDATED');
    assert.equal(after['current'].name, factory.targets.heartbeatV2);
  });

  test('a change to a system-policy app needs a reboot (100) even with the same rootfs', async (t) => {
    const device = await deviceOn(t, factory.targets.base);
    const deploymentsBefore = await device.device.sysroot.deployments();
    const result = await install(device, await bundleFor(factory.targets.systemApp));
    assert.equal(result.code, 100, result.stderr);
    assert.match(result.stdout, /sysapp.*system/);
    assert.deepEqual(await device.device.sysroot.deployments(), deploymentsBefore, 'the rootfs did not change');
    assert.equal((await run(device)).code, 100, 'run before the reboot');
    assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
    const ran = await run(device);
    assert.equal(ran.code, 0, ran.stderr);
    assert.deepEqual(
      device.daemon.running().map((line) => line.split(' ')[0]),
      ['heartbeat_main_1', 'sysapp_main_1'],
    );
    assert.equal((await status(device))['state'], 'DONE');
  });

  test('a mixed update (rootfs and a container app) needs a reboot (100); after it both are new', async (t) => {
    const device = await deviceOn(t, factory.targets.base);
    const result = await install(device, await bundleFor(factory.targets.mixed));
    assert.equal(result.code, 100, result.stderr);
    assert.deepEqual(device.daemon.running(), [heartbeatImage(factory.images.v1)], 'the old app runs until the reboot');
    assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
    await device.daemon.restart();
    const ran = await run(device);
    assert.equal(ran.code, 0, ran.stderr);
    assert.deepEqual(device.daemon.running(), [heartbeatImage(factory.images.v2)]);
    const after = await status(device);
    assert.equal(after['booted'].target, factory.targets.mixed);
  });

  test('an app removed from the target is stopped and removed', async (t) => {
    const device = await deviceOn(t, factory.targets.base);
    assert.equal((await install(device, await bundleFor(factory.targets.noApps))).code, 101);
    const ran = await run(device);
    assert.equal(ran.code, 0, ran.stderr);
    assert.deepEqual(device.daemon.running(), []);
    assert.equal(device.daemon.docker('ps', '-aq').trim(), '', 'its containers are removed, not just stopped');
  });

  test('a new app that exits at once: run 99, the previous apps run again, the target is recorded as failed', async (t) => {
    const device = await deviceOn(t, factory.targets.base);
    assert.equal((await install(device, await bundleFor(factory.targets.crasher))).code, 101);
    const ran = await cli('run', '--config', device.configDir, '--json');
    assert.equal(ran.code, 99, ran.stderr);
    assert.match(JSON.parse(ran.stdout).message, /crasher.*exited/);
    assert.deepEqual(device.daemon.running(), [heartbeatImage(factory.images.v1)]);
    assert.equal(device.daemon.docker('ps', '-aq', '--filter', 'label=com.docker.compose.project=crasher').trim(), '');
    const after = await status(device);
    assert.equal(after['state'], 'ERROR');
    assert.equal(after['current'].name, factory.targets.base);
    assert.deepEqual(
      after['failedTargets'].map((entry: any) => entry.target.name),
      [factory.targets.crasher],
    );
  });

  test('apps fail on a new rootfs: run 100 makes the previous deployment the default; after the reboot run 99', async (t) => {
    const device = await deviceOn(t, factory.targets.base);
    const baseCommit = (await device.device.sysroot.deployments())[0]!.commit;
    assert.equal((await install(device, await bundleFor(factory.targets.crasherNewRootfs))).code, 100);
    assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
    const failed = await run(device);
    assert.equal(failed.code, 100, failed.stderr);
    assert.equal(
      (await device.device.sysroot.deployments())[0]!.commit,
      baseCommit,
      'the previous rootfs is the default again',
    );
    assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
    const back = await run(device);
    assert.equal(back.code, 99, back.stderr);
    assert.deepEqual(device.daemon.running(), [heartbeatImage(factory.images.v1)]);
    const after = await status(device);
    assert.equal(after['booted'].target, factory.targets.base);
    assert.equal(after['pending'], null);
  });

  test('one byte flipped in a layer blob: refused 74; nothing staged, nothing loaded into the engine', async (t) => {
    const device = await deviceOn(t, factory.targets.base);
    const bundle = await bundleFor(factory.targets.heartbeatV2);
    const apps = new AppsDir(path.join(bundle, 'apps'));
    const manifest = JSON.parse(await fs.readFile(apps.blobs.pathOf(factory.images.v2), 'utf8'));
    const versionLayer = manifest.layers[1].digest as string;
    const file = apps.blobs.pathOf(versionLayer);
    const bytes = await fs.readFile(file);
    bytes[bytes.length - 10] ^= 0x01;
    await fs.writeFile(file, bytes);

    const images = device.daemon.images();
    const before = await device.fingerprint();
    const result = await install(device, bundle);
    assert.equal(result.code, 74, result.stdout);
    assert.match(result.stderr, /layer of test\/heartbeat.*hashes to/);
    assert.equal(await device.fingerprint(), before);
    assert.deepEqual(device.daemon.images(), images);
    assert.equal((await status(device))['state'], 'WONTGO');
  });

  test('a compose archive that does not match its digest: refused 72, device unchanged', async (t) => {
    const device = await deviceOn(t, factory.targets.base);
    const bundle = await bundleFor(factory.targets.heartbeatV2);
    const appRoot = path.join(bundle, 'apps', 'heartbeat');
    const [version] = await fs.readdir(appRoot);
    const archive = (await fs.readdir(path.join(appRoot, version!))).find((name) => name.endsWith('.tgz'))!;
    await fs.appendFile(path.join(appRoot, version!, archive), 'x');
    const before = await device.fingerprint();
    const result = await install(device, bundle);
    assert.equal(result.code, 72, result.stderr);
    assert.equal(await device.fingerprint(), before);
  });

  test('not enough space: 60 before anything is written', async (t) => {
    const device = await deviceOn(t, factory.targets.base);
    const bundle = await bundleFor(factory.targets.heartbeatV2);
    const storage = device.config.storagePath;
    const aside = `${storage}.aside`;
    await fs.rename(storage, aside);
    await fs.mkdir(storage);
    const used = Number(spawnSync('du', ['-sb', aside], { encoding: 'utf8' }).stdout.split('\t')[0]);
    const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${used + 256 * 1024}`, 'tmpfs', storage]);
    if (mount.status !== 0) {
      assert.notEqual(process.env['CI'], 'true', `mount failed in CI: ${mount.stderr}`);
      t.skip('mounting a tmpfs is not permitted here');
      return;
    }
    t.after(() => {
      spawnSync('umount', [storage]);
    });
    spawnSync('cp', ['-a', `${aside}/.`, storage]);
    const before = await device.fingerprint([path.relative(device.dir, aside)]);
    const result = await cli('install', '--config', device.configDir, '--src-dir', bundle, '--json');
    assert.equal(result.code, 60, result.stderr);
    assert.match(result.stderr, /space required \d+ B, available \d+ B/);
    const report = JSON.parse(result.stdout);
    assert.ok(report.required > report.available);
    assert.equal(await device.fingerprint([path.relative(device.dir, aside)]), before);
  });

  test('a blob shared by two image versions is stored once on the stick and once on the device', async (t) => {
    const device = await deviceOn(t, factory.targets.base);
    const bundle = await bundleFor(factory.targets.heartbeatV2);
    assert.equal((await install(device, bundle)).code, 101);
    const store = new AppsDir(device.device.paths.appStore);
    const layersOf = async (apps: AppsDir, digest: string) =>
      (JSON.parse(await fs.readFile(apps.blobs.pathOf(digest), 'utf8')).layers as Array<{ digest: string }>).map(
        (layer) => layer.digest,
      );
    const [v1Layers, v2Layers] = [await layersOf(store, factory.images.v1), await layersOf(store, factory.images.v2)];
    assert.equal(v1Layers[0], v2Layers[0], 'both versions share the busybox layer');
    const stored = await fs.readdir(path.join(store.blobs.dir, 'sha256'));
    assert.equal(stored.filter((name) => name === hexOf(v1Layers[0]!)).length, 1);
    // Both versions are kept (the previous one for a rollback), each blob once.
    const v1Manifest = JSON.parse(await fs.readFile(store.blobs.pathOf(factory.images.v1), 'utf8'));
    const v2Manifest = JSON.parse(await fs.readFile(store.blobs.pathOf(factory.images.v2), 'utf8'));
    const distinct = new Set(
      [
        factory.images.v1,
        factory.images.v2,
        v1Manifest.config.digest,
        v2Manifest.config.digest,
        ...v1Layers,
        ...v2Layers,
      ].map(hexOf),
    );
    assert.deepEqual(new Set(stored), distinct);

    const stick = new AppsDir(path.join(bundle, 'apps'));
    const onStick = await fs.readdir(path.join(stick.blobs.dir, 'sha256'));
    assert.equal(onStick.length, new Set(onStick).size);
    assert.ok(onStick.includes(hexOf(v2Layers[0]!)));
  });

  test('an app that dies inside the testing window fails the update (99), even though it started', async (t) => {
    const device = await deviceOn(t, factory.targets.base, 6);
    assert.equal((await install(device, await bundleFor(factory.targets.flaky))).code, 101);
    const ran = await cli('run', '--config', device.configDir, '--json');
    assert.equal(ran.code, 99, ran.stderr);
    assert.match(JSON.parse(ran.stdout).message, /flaky.*exited \(exit code 4\)/);
    assert.deepEqual(device.daemon.running(), [heartbeatImage(factory.images.v1)]);
  });
});

describe("the running target's apps are kept in sync", TESTS_AT_A_TIME, () => {
  const storeOf = (device: AppsDevice) => new AppsDir(device.device.paths.appStore);
  const heartbeatStored = async (device: AppsDevice) =>
    fs
      .access(path.join(storeOf(device).root, 'heartbeat'))
      .then(() => true)
      .catch(() => false);

  test('a factory-flashed device without a status record or apps: install syncs them (101), run starts them', async (t) => {
    const device = await deviceOn(t, factory.targets.base);
    device.daemon.docker('rm', '-f', 'heartbeat_main_1');
    await fs.rm(device.device.paths.appStore, { recursive: true, force: true });
    await fs.rm(device.device.paths.statusFile);
    await fs.rm(device.device.paths.updateStateFile);
    const deploymentsBefore = await device.device.sysroot.deployments();

    const result = await install(device, await bundleFor(factory.targets.base));
    assert.equal(result.code, 101, `${result.stdout}${result.stderr}`);
    assert.match(result.stdout, /already runs target .*its apps were synced.*not in the app store/);
    assert.ok(await heartbeatStored(device), 'the app is in the store');
    assert.deepEqual(await device.device.sysroot.deployments(), deploymentsBefore, 'the rootfs is not touched');
    assert.equal((await device.device.boot.env.read())['upgrade_available'], '0');

    await device.daemon.restart();
    const ran = await run(device);
    assert.equal(ran.code, 0, ran.stderr);
    assert.deepEqual(device.daemon.running(), [heartbeatImage(factory.images.v1)]);
    const after = await status(device);
    assert.equal(after['current'].name, factory.targets.base);
    assert.equal(after['state'], 'UPDATED');
    assert.equal(after['pending'], null);
  });

  test('a removed container: run with nothing pending starts it again and says so; install then answers 0', async (t) => {
    const device = await deviceOn(t, factory.targets.base);
    const quiet = await run(device);
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.doesNotMatch(quiet.stdout, /started again/);
    const stateBefore = (await status(device))['state'];

    device.daemon.docker('rm', '-f', 'heartbeat_main_1');
    assert.deepEqual(device.daemon.running(), []);
    const ran = await cli('run', '--config', device.configDir, '--json');
    assert.equal(ran.code, 0, ran.stderr);
    const report = JSON.parse(ran.stdout);
    assert.equal(report.outcome, 'APPS_RESTORED');
    assert.match(report.message, /started again: heartbeat/);
    assert.deepEqual(device.daemon.running(), [heartbeatImage(factory.images.v1)]);
    const after = await status(device);
    assert.equal(after['state'], stateBefore, 'no update ran: the state stays');
    assert.equal(after['history'].at(-1).outcome, 'APPS_RESTORED');

    const again = await install(device, await bundleFor(factory.targets.base));
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /already runs/);
  });

  test('a removed container: install of the running target answers 101 and run brings the app back', async (t) => {
    const device = await deviceOn(t, factory.targets.base);
    device.daemon.docker('rm', '-f', 'heartbeat_main_1');
    const result = await install(device, await bundleFor(factory.targets.base));
    assert.equal(result.code, 101, `${result.stdout}${result.stderr}`);
    assert.match(result.stdout, /service "main" has no container/);
    await device.daemon.restart();
    const ran = await run(device);
    assert.equal(ran.code, 0, ran.stderr);
    assert.deepEqual(device.daemon.running(), [heartbeatImage(factory.images.v1)]);
  });

  test('--force on a device whose apps are in sync syncs them again (101); run then commits (0)', async (t) => {
    const device = await deviceOn(t, factory.targets.base);
    const bundle = await bundleFor(factory.targets.base);
    assert.equal((await install(device, bundle)).code, 0);
    const forced = await cli('install', '--config', device.configDir, '--src-dir', bundle, '--force');
    assert.equal(forced.code, 101, `${forced.stdout}${forced.stderr}`);
    assert.match(forced.stdout, /--force/);
    const ran = await run(device);
    assert.equal(ran.code, 0, ran.stderr);
    assert.deepEqual(device.daemon.running(), [heartbeatImage(factory.images.v1)]);
    assert.equal((await status(device))['state'], 'UPDATED');
  });

  test('synced apps that do not start: run 120, INCONSISTENT, and the running target is not recorded as failed', async (t) => {
    const device = await deviceOn(t, factory.targets.base);
    const pin = (await status(device))['current'].apps.heartbeat;
    device.daemon.docker('rm', '-f', 'heartbeat_main_1');
    await fs.rm(path.join(storeOf(device).projectDir('heartbeat', pin.digest), RENDERED_COMPOSE_FILE));
    const synced = await install(device, await bundleFor(factory.targets.base));
    assert.equal(synced.code, 101, `${synced.stdout}${synced.stderr}`);
    const ran = await run(device);
    assert.equal(ran.code, 120, `${ran.stdout}${ran.stderr}`);
    assert.match(ran.stderr, /the target the device runs, did not start/);
    const after = await status(device);
    assert.equal(after['state'], 'ERROR');
    assert.notEqual(after['inconsistent'], null);
    assert.deepEqual(after['failedTargets'], []);
    assert.equal(after['current'].name, factory.targets.base);
  });

  test('an app gone from the store and the engine: run answers 33 and keeps the state; install syncs it back', async (t) => {
    const device = await deviceOn(t, factory.targets.base);
    device.daemon.docker('rm', '-f', 'heartbeat_main_1');
    await fs.rm(path.join(device.device.paths.appStore, 'heartbeat'), { recursive: true, force: true });
    const stateBefore = (await status(device))['state'];
    const ran = await run(device);
    assert.equal(ran.code, 33, `${ran.stdout}${ran.stderr}`);
    assert.equal(ran.stderr.trimEnd().split('\n').length, 1);
    assert.match(ran.stderr, /did not start again/);
    const failed = await status(device);
    assert.equal(failed['state'], stateBefore);
    assert.equal(failed['lastError'].exitCode, 33);

    const synced = await install(device, await bundleFor(factory.targets.base));
    assert.equal(synced.code, 101, synced.stderr);
    const back = await run(device);
    assert.equal(back.code, 0, back.stderr);
    assert.deepEqual(device.daemon.running(), [heartbeatImage(factory.images.v1)]);
    assert.equal((await status(device))['lastError'], null);
  });
});
