import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { AppsDir } from '../../src/apps/format/apps-dir.js';
import { hexOf } from '../../src/apps/format/digest.js';
import { exportBundle } from '../../src/bundle/workstation/export.js';
import { buildAppsFactory, type AppsFactory } from '../support/apps-factory.js';
import { cli, ferryProcess } from '../support/cli.js';
import { buildFactory, exportTo, TAG, tempDir, type TestFactory } from '../support/factory.js';
import { flipByte, objectsOnlyInBundle, rewriteApp } from '../support/hostile.js';
import { assertRefused, makeDevice } from '../support/sim-device.js';
import { hashTree } from '../support/tree-hash.js';

/**
 * Content the signatures reach only through digests: OSTree objects, app manifests, compose archives, image
 * manifests, configs and layers. Each forgery is refused with its own code before anything is staged.
 */

let rootfs: TestFactory;
let apps: AppsFactory;
before(async () => {
  rootfs = await buildFactory();
  apps = await buildAppsFactory();
});

describe('hostile media: OSTree content', () => {
  for (const kind of ['file', 'dirtree', 'commit'] as const) {
    test(`a byte flipped in a ${kind} object the device lacks: refused, nothing pulled`, async () => {
      const device = await makeDevice(rootfs, rootfs.v1);
      const bundle = await exportTo(rootfs, rootfs.v2);
      const candidates = await objectsOnlyInBundle(bundle, device.device.sysroot.repo.path, kind);
      assert.ok(candidates.length > 0, `the bundle has a ${kind} object the device lacks`);
      await flipByte(candidates[0]!, kind === 'file' ? undefined : 8);
      // The damaged object is named from what ferry reads on disk; ostree's own words follow.
      const name = path.relative(bundle, candidates[0]!).replace(/[./]/g, (c) => `\\${c}`);
      await assertRefused(
        device,
        bundle,
        70,
        new RegExp(
          `^ferry: ostree_repo/: content of target "sim-lmp-2" failed verification: ${name} \\(the ${kind}( of /\\S*)?\\) is damaged: .*(Corrupted|checksum)`,
          'i',
        ),
      );
    });
  }

  test('a pull that fails with words of damage from ostree while every object is sound: 50, not 70', async () => {
    const device = await makeDevice(rootfs, rootfs.v1);
    const bundle = await exportTo(rootfs, rootfs.v2);
    const tools = await tempDir('failing-ostree');
    const real = spawnSync('sh', ['-c', 'command -v ostree'], { encoding: 'utf8' }).stdout.trim();
    assert.ok(real.startsWith('/'), 'ostree is installed');
    // ostree that fails its pull as a failing disk would, in the words it uses for a corrupted object.
    await fs.writeFile(
      path.join(tools, 'ostree'),
      `#!/bin/sh\ncase " $* " in *" pull-local "*) echo "error: Corrupted file object; invalid checksum" >&2; exit 1;; esac\nexec ${real} "$@"\n`,
      { mode: 0o755 },
    );
    const before = await device.fingerprint();
    const result = await ferryProcess(['install', '--config', device.configDir, '--src-dir', bundle], {
      PATH: `${tools}:${process.env['PATH'] ?? ''}`,
    });
    assert.equal(result.code, 50, result.stderr);
    assert.match(result.stderr, /^ferry: pulling target "sim-lmp-2" failed: .*Corrupted file object/);
    assert.equal(result.stderr.trimEnd().split('\n').length, 1);
    assert.equal(await device.fingerprint(), before, 'nothing was kept');
  });

  for (const kind of ['file', 'dirtree'] as const) {
    test(`a ${kind} object missing from ostree_repo/: 8 from install (nothing pulled) and from verify, naming it`, async () => {
      const device = await makeDevice(rootfs, rootfs.v1);
      const bundle = await exportTo(rootfs, rootfs.v2);
      const [object] = await objectsOnlyInBundle(bundle, device.device.sysroot.repo.path, kind);
      await fs.rm(object!);
      const name = path.relative(bundle, object!).replace(/[./]/g, (c) => `\\${c}`);
      await assertRefused(
        device,
        bundle,
        8,
        new RegExp(
          `^ferry: ostree_repo/: content of target "sim-lmp-2" is incomplete: ${name} \\(the ${kind} of /\\S*\\) is missing$`,
        ),
      );
      const before = await hashTree(bundle);
      const verified = await cli('verify', bundle);
      assert.equal(verified.code, 8, verified.stderr);
      assert.match(
        verified.stderr,
        new RegExp(`^ferry: target "sim-lmp-2": ${name} \\(the ${kind} of /\\S*\\) is missing\n$`),
      );
      assert.equal(await hashTree(bundle), before, 'verify wrote nothing into the bundle');
    });
  }

  test('an object the bundle lacks but the device holds is not needed: the install goes ahead', async () => {
    const device = await makeDevice(rootfs, rootfs.v1);
    const bundle = await exportTo(rootfs, rootfs.v2);
    const objects = path.join(bundle, 'ostree_repo', 'objects');
    const onlyInBundle = new Set(await objectsOnlyInBundle(bundle, device.device.sysroot.repo.path, 'file'));
    let shared: string | undefined;
    for (const prefix of await fs.readdir(objects))
      for (const entry of await fs.readdir(path.join(objects, prefix)))
        if (entry.endsWith('.filez') && !onlyInBundle.has(path.join(objects, prefix, entry)))
          shared = path.join(objects, prefix, entry);
    assert.ok(shared, 'v1 and v2 share a file object');
    await fs.rm(shared);
    const result = await cli('install', '--config', device.configDir, '--src-dir', bundle);
    assert.equal(result.code, 100, result.stderr);
  });
});

describe('hostile media: apps', () => {
  /** A device on rootfs A with no apps (no engine needed: install only verifies and stages). */
  const device = () => makeDevice(apps as unknown as TestFactory, apps.targets.noApps);
  async function bundle(): Promise<string> {
    const destination = path.join(await tempDir('hostile-apps'), 'bundle');
    await exportBundle(apps.repo, {
      targetName: apps.targets.flaky,
      destination,
      tag: TAG,
      type: 'ci',
      expiresInDays: 30,
    });
    return destination;
  }
  const appsOf = (dir: string) => new AppsDir(path.join(dir, 'apps'));
  async function pinOf(dir: string, app: string): Promise<string> {
    const targets = JSON.parse(await fs.readFile(path.join(dir, 'tuf', 'targets.json'), 'utf8'));
    return (targets.signed.targets[apps.targets.flaky].custom.docker_compose_apps[app].uri as string).split('@')[1]!;
  }
  async function imageManifest(dir: string): Promise<{ digest: string; config: string; layers: string[] }> {
    const manifest = JSON.parse(await fs.readFile(appsOf(dir).blobs.pathOf(apps.images.v1), 'utf8'));
    return {
      digest: apps.images.v1,
      config: manifest.config.digest,
      layers: manifest.layers.map((layer: { digest: string }) => layer.digest),
    };
  }

  test('the control case: the untouched bundle installs (101)', async () => {
    const result = await cli('install', '--config', (await device()).configDir, '--src-dir', await bundle());
    assert.equal(result.code, 101, result.stderr);
  });

  test('a byte flipped in a layer: 74', async () => {
    const dir = await bundle();
    const { layers } = await imageManifest(dir);
    await flipByte(appsOf(dir).blobs.pathOf(layers[1]!));
    await assertRefused(
      await device(),
      dir,
      74,
      /layer of test\/heartbeat\): content hashes to sha256:[0-9a-f]{64}, expected/,
    );
  });

  test('a byte flipped in the shared busybox layer: 74', async () => {
    const dir = await bundle();
    const { layers } = await imageManifest(dir);
    await flipByte(appsOf(dir).blobs.pathOf(layers[0]!));
    await assertRefused(await device(), dir, 74, /layer of test\/heartbeat/);
  });

  test('a layer missing: 8', async () => {
    const dir = await bundle();
    const { layers } = await imageManifest(dir);
    await fs.rm(appsOf(dir).blobs.pathOf(layers[1]!));
    await assertRefused(await device(), dir, 8, /layer of test\/heartbeat\) is missing from the bundle/);
  });

  test('a byte flipped in an image manifest: 73', async () => {
    const dir = await bundle();
    await flipByte(appsOf(dir).blobs.pathOf(apps.images.v1), 20);
    await assertRefused(await device(), dir, 73, /manifest of test\/heartbeat\) hashes to/);
  });

  test('a byte flipped in an image config: 73', async () => {
    const dir = await bundle();
    const { config } = await imageManifest(dir);
    await flipByte(appsOf(dir).blobs.pathOf(config), 5);
    await assertRefused(await device(), dir, 73, /config of test\/heartbeat\) hashes to/);
  });

  test('an index.json that names another image manifest: 73', async () => {
    const dir = await bundle();
    const pin = await pinOf(dir, 'heartbeat');
    const layout = appsOf(dir).imageDir('heartbeat', pin, {
      host: 'ferry.local',
      path: 'test/heartbeat',
      digest: apps.images.v1,
    });
    const index = JSON.parse(await fs.readFile(path.join(layout, 'index.json'), 'utf8'));
    index.manifests[0].digest = apps.images.v2;
    await fs.writeFile(path.join(layout, 'index.json'), JSON.stringify(index));
    await assertRefused(await device(), dir, 73, /index\.json does not name manifest/);
  });

  test('a compose archive that does not match the app manifest: 72', async () => {
    const dir = await bundle();
    const pin = await pinOf(dir, 'heartbeat');
    const archive = (await fs.readdir(appsOf(dir).appDir('heartbeat', pin))).find((name) => name.endsWith('.tgz'))!;
    await flipByte(path.join(appsOf(dir).appDir('heartbeat', pin), archive));
    await assertRefused(await device(), dir, 72, /\.tgz hashes to sha256:[0-9a-f]{64} .* the app manifest says/);
  });

  test('an app manifest that does not match the digest the target pins: 71', async () => {
    const dir = await bundle();
    const pin = await pinOf(dir, 'heartbeat');
    const file = appsOf(dir).manifestFile('heartbeat', pin);
    await fs.writeFile(file, (await fs.readFile(file, 'utf8')).replace('"schemaVersion":2', '"schemaVersion":2 '));
    await assertRefused(
      await device(),
      dir,
      71,
      /manifest\.json hashes to sha256:[0-9a-f]{64}, the signed target pins/,
    );
  });

  test('an app the target pins, missing from the stick: 8', async () => {
    const dir = await bundle();
    await fs.rm(path.join(dir, 'apps', 'flaky'), { recursive: true });
    await assertRefused(await device(), dir, 8, /apps\/flaky\/[0-9a-f]{12}\/manifest\.json is missing from the bundle/);
  });

  test('a compose file whose image is not pinned by digest (signed by the real key): 76', async () => {
    const dir = await bundle();
    await rewriteApp(apps.repo, dir, apps.targets.flaky, 'flaky', (files) => {
      const compose = files.get('docker-compose.yml')!;
      compose.content = Buffer.from(compose.content.toString().replace(/@sha256:[0-9a-f]{64}/, ':1'));
    });
    await assertRefused(
      await device(),
      dir,
      76,
      /service "main": image "ferry\.local\/test\/heartbeat:1" is not pinned by digest/,
    );
  });

  test('a compose file that uses an image its app manifest does not list: 76', async () => {
    const dir = await bundle();
    await rewriteApp(apps.repo, dir, apps.targets.flaky, 'flaky', (files) => {
      const compose = files.get('docker-compose.yml')!;
      compose.content = Buffer.from(compose.content.toString().replace(hexOf(apps.images.v1), hexOf(apps.images.v2)));
    });
    await assertRefused(await device(), dir, 76, /which the app manifest does not list/);
  });

  test('a compose archive with a member that climbs out of the project (../): 76', async () => {
    const dir = await bundle();
    await rewriteApp(apps.repo, dir, apps.targets.flaky, 'flaky', (files) => {
      files.set('../../etc/cron.d/evil', { mode: 0o644, content: Buffer.from('* * * * * root reboot\n') });
    });
    await assertRefused(await device(), dir, 76, /member "..\/..\/etc\/cron.d\/evil" leaves the project directory/);
  });

  test('an extra app on the stick that the target does not name is ignored, never staged', async () => {
    const dir = await bundle();
    await fs.cp(path.join(dir, 'apps', 'flaky'), path.join(dir, 'apps', 'intruder'), { recursive: true });
    const target = await device();
    const result = await cli('install', '--config', target.configDir, '--src-dir', dir);
    assert.equal(result.code, 101, result.stderr);
    await assert.rejects(fs.access(path.join(target.device.paths.appStore, 'intruder')));
  });
});
