import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { AppsDir } from '../../src/apps/format/apps-dir.js';
import { readComposeArchive } from '../../src/apps/format/compose-archive.js';
import { hexOf } from '../../src/apps/format/digest.js';
import { exportBundle } from '../../src/bundle/workstation/export.js';
import { addTarget } from '../../src/repo/add-target.js';
import { createSimDevice } from '../../src/sim/sim-device.js';
import { buildAppsFactory, compose, type AppsFactory } from '../support/apps-factory.js';
import { cli } from '../support/cli.js';
import { PrivateDockerd } from '../support/dockerd.js';
import { HARDWARE_ID, TAG, tempDir } from '../support/factory.js';
import { openTestDevice } from '../support/sim-device.js';

/**
 * A compose project may name its file as the Compose specification allows (compose.yaml, compose.yml,
 * docker-compose.yaml, docker-compose.yml, first one wins): `app add` takes each, and a device installs and runs it.
 */

let factory: AppsFactory;
before(async () => {
  factory = await buildAppsFactory();
});

const imageV1 = () => path.join(factory.dir, 'image-1');
const BUSY = 'trap "exit 0" TERM; while true; do sleep 1; done';

async function project(files: Record<string, string>): Promise<string> {
  const dir = await tempDir('compose-project');
  for (const [name, content] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await fs.writeFile(path.join(dir, name), content);
  }
  return dir;
}

async function addApp(name: string, dir: string): Promise<{ code: number; stderr: string; digest: string }> {
  const result = await cli('app', 'add', name, '--repo', factory.repo.dir, '--compose', dir, '--image', imageV1());
  return { code: result.code, stderr: result.stderr, digest: /@(sha256:[0-9a-f]{64})/.exec(result.stdout)?.[1] ?? '' };
}

/** The files of the app's archive in the factory, and the compose text a device would take from it. */
async function archived(name: string, digest: string): Promise<{ names: string[]; compose: string }> {
  const apps = new AppsDir(path.join(factory.repo.dir, 'apps'));
  const manifest = JSON.parse(await fs.readFile(apps.manifestFile(name, digest), 'utf8'));
  const archive = await fs.readFile(apps.archiveFile(name, digest, manifest.layers[0].digest));
  const { files, compose: text } = await readComposeArchive(archive);
  return { names: files.map((file) => file.name).sort(), compose: text };
}

describe('compose file names', () => {
  for (const name of ['compose.yaml', 'compose.yml', 'docker-compose.yaml', 'docker-compose.yml']) {
    test(`app add takes a project whose compose file is ${name}, and pins its image`, async () => {
      const dir = await project({ [name]: compose('ferry.local/test/heartbeat:1', BUSY) });
      const added = await addApp('named', dir);
      assert.equal(added.code, 0, added.stderr);
      const { names, compose: text } = await archived('named', added.digest);
      assert.deepEqual(names, [name]);
      assert.match(text, new RegExp(`image: ferry\\.local/test/heartbeat@sha256:${hexOf(factory.images.v1)}`));
    });
  }

  test('several compose files: the first in the order of precedence is pinned, the others travel as they are', async () => {
    const pinnedOne = compose('ferry.local/test/heartbeat:1', BUSY);
    const other = 'services:\n  x:\n    image: ferry.local/test/not-given:1\n';
    const dir = await project({ 'docker-compose.yml': other, 'compose.yml': pinnedOne, 'sub/compose.yaml': other });
    const added = await addApp('several', dir);
    assert.equal(added.code, 0, added.stderr);
    const { names, compose: text } = await archived('several', added.digest);
    assert.deepEqual(names, ['compose.yml', 'docker-compose.yml', 'sub/compose.yaml']);
    assert.match(text, /heartbeat@sha256:/, 'the device takes compose.yml, not docker-compose.yml');
  });

  test('no compose file: 51; a missing directory or a file: the path codes (62, 63); one line each', async () => {
    const empty = await project({ 'README.md': 'nothing here\n', 'sub/docker-compose.yml': 'services: {}\n' });
    for (const [dir, code, reason] of [
      [
        empty,
        51,
        /^ferry: --compose .* holds no compose file \(compose\.yaml, compose\.yml, docker-compose\.yaml, docker-compose\.yml\)$/,
      ],
      [path.join(empty, 'no-such-dir'), 62, /^ferry: .*no-such-dir does not exist$/],
      [path.join(empty, 'README.md'), 63, /^ferry: .*README\.md is a file, not a directory$/],
    ] as const) {
      const result = await addApp('nofile', dir);
      assert.equal(result.code, code, result.stderr);
      assert.equal(result.stderr.trimEnd().split('\n').length, 1, result.stderr);
      assert.match(result.stderr.trimEnd(), reason);
    }
  });

  test('on a device: an app whose project has compose.yaml installs (101) and runs (0)', async (t) => {
    const dir = await project({ 'compose.yaml': compose('ferry.local/test/heartbeat:1', BUSY) });
    const added = await addApp('modern', dir);
    assert.equal(added.code, 0, added.stderr);
    const target = (
      await addTarget(factory.repo, {
        name: 'apps-lmp',
        version: '1000',
        hardwareIds: [HARDWARE_ID],
        tags: [TAG],
        ref: 'rootfs/a',
        ostreeRepo: path.join(factory.dir, 'build'),
        apps: [{ name: 'modern', digest: added.digest }],
      })
    ).name;

    const daemon = await PrivateDockerd.start();
    t.after(() => daemon.stop());
    const deviceDir = path.join(await tempDir('apps-device'), 'device');
    await createSimDevice(deviceDir, factory.repo, {
      target: factory.targets.noApps,
      dockerHost: daemon.host,
      testingWindowSeconds: 1,
    });
    const device = await openTestDevice(deviceDir);
    const bundle = path.join(await tempDir('apps-bundle'), 'bundle');
    await exportBundle(factory.repo, {
      targetName: target,
      destination: bundle,
      tag: TAG,
      type: 'ci',
      expiresInDays: 30,
    });
    const installed = await cli('install', '--config', device.configDir, '--src-dir', bundle);
    assert.equal(installed.code, 101, installed.stderr);
    await daemon.restart();
    const ran = await cli('run', '--config', device.configDir);
    assert.equal(ran.code, 0, ran.stderr);
    assert.deepEqual(daemon.running(), [`modern_main_1 ferry.local/test/heartbeat:sha256-${hexOf(factory.images.v1)}`]);
  });
});
