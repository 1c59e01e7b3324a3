import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { digestOf, hexOf } from '../../src/apps/format/digest.js';
import { buildAppsFactory, type AppsFactory } from '../support/apps-factory.js';
import { cli } from '../support/cli.js';
import { tempDir } from '../support/factory.js';

let factory: AppsFactory;
before(async () => {
  factory = await buildAppsFactory();
});

const readJson = async (file: string): Promise<any> => JSON.parse(await fs.readFile(file, 'utf8'));

describe('apps in the factory and on the stick', () => {
  test('target add pins each app by digest, with its restart policy as a signed custom field', async () => {
    const targets = await readJson(path.join(factory.repo.dir, 'tuf', 'targets.json'));
    const apps = targets.signed.targets[factory.targets.systemApp].custom.docker_compose_apps;
    assert.match(apps.heartbeat.uri, /^apps\.ferry\.local\/test\/heartbeat@sha256:[0-9a-f]{64}$/);
    assert.equal(apps.heartbeat.restart_policy, 'container');
    assert.equal(apps.sysapp.restart_policy, 'system');
  });

  test('export writes apps/ in the reference layout: uri, manifest.json, the archive, docker-compose.yml, images/, one blobs/', async () => {
    const dst = path.join(await tempDir('app-export'), 'stick');
    const result = await cli('export', '--repo', factory.repo.dir, factory.targets.systemApp, dst, '--tag', 'main');
    assert.equal(result.code, 0, result.stderr);
    const targets = await readJson(path.join(dst, 'tuf', 'targets.json'));
    const pins = targets.signed.targets[factory.targets.systemApp].custom.docker_compose_apps;
    assert.deepEqual((await fs.readdir(path.join(dst, 'apps'))).sort(), ['blobs', 'heartbeat', 'sysapp']);
    for (const [name, pin] of Object.entries(pins) as Array<[string, { uri: string }]>) {
      const digest = pin.uri.split('@')[1]!;
      const dir = path.join(dst, 'apps', name, hexOf(digest));
      const manifestBytes = await fs.readFile(path.join(dir, 'manifest.json'));
      assert.equal(digestOf(manifestBytes), digest, 'the manifest is what the uri pins');
      // No newline after it: aklite-offline compares the file with the target's uri byte for byte.
      assert.equal(await fs.readFile(path.join(dir, 'uri'), 'utf8'), pin.uri);
      const manifest = JSON.parse(manifestBytes.toString());
      const archive = await fs.readFile(path.join(dir, `${hexOf(manifest.layers[0].digest)}.tgz`));
      assert.equal(digestOf(archive), manifest.layers[0].digest);
      const compose = await fs.readFile(path.join(dir, 'docker-compose.yml'), 'utf8');
      assert.match(compose, /image: ferry\.local\/test\/heartbeat@sha256:[0-9a-f]{64}/);
      for (const image of manifest.images) {
        const imageDigest = image.manifest.digest as string;
        const layout = path.join(dir, 'images', 'ferry.local', 'test', 'heartbeat', hexOf(imageDigest));
        assert.deepEqual((await fs.readdir(layout)).sort(), ['index.json', 'oci-layout']);
        assert.equal((await readJson(path.join(layout, 'index.json'))).manifests[0].digest, imageDigest);
        await fs.access(path.join(dst, 'apps', 'blobs', 'sha256', hexOf(imageDigest)));
      }
    }
  });

  test('app add refuses a compose image that no --image provides (51), and an unknown app in target add (52)', async () => {
    const dir = await tempDir('app-add');
    await fs.writeFile(path.join(dir, 'docker-compose.yml'), 'services:\n  a:\n    image: ferry.local/test/other:1\n');
    const missing = await cli('app', 'add', 'other', '--repo', factory.repo.dir, '--compose', dir);
    assert.equal(missing.code, 51);
    assert.match(missing.stderr, /ferry\.local\/test\/other:1.*is not among the --image given/);

    await fs.writeFile(path.join(dir, 'docker-compose.yml'), 'services:\n  a:\n    build: .\n');
    const build = await cli('app', 'add', 'other', '--repo', factory.repo.dir, '--compose', dir);
    assert.equal(build.code, 51);
    assert.match(build.stderr, /names no image/);

    const unknown = await cli(
      'target',
      'add',
      '--repo',
      factory.repo.dir,
      '--name',
      'x',
      '--version',
      '99',
      '--hardware-id',
      'h',
      '--tag',
      'main',
      '--ref',
      'ferry/' + factory.targets.base,
      '--app',
      'nope',
    );
    assert.equal(unknown.code, 52, unknown.stderr);
    const badApp = await cli(
      'target',
      'add',
      '--repo',
      factory.repo.dir,
      '--name',
      'x',
      '--version',
      '99',
      '--hardware-id',
      'h',
      '--tag',
      'main',
      '--ref',
      'ferry/' + factory.targets.base,
      '--app',
      'Bad Name',
    );
    assert.equal(badApp.code, 2);
  });

  test('app add takes a docker save archive too, pinning the image by the digest skopeo gives it', async () => {
    const dir = await tempDir('docker-archive');
    const archive = path.join(dir, 'heartbeat.tar');
    const copied = spawnSync('skopeo', [
      'copy',
      '--quiet',
      `oci:${path.join(factory.dir, 'image-1')}`,
      `docker-archive:${archive}:ferry.local/test/archived:7`,
    ]);
    assert.equal(copied.status, 0, String(copied.stderr));
    const compose = path.join(dir, 'compose');
    await fs.mkdir(compose);
    await fs.writeFile(
      path.join(compose, 'docker-compose.yml'),
      'services:\n  a:\n    image: ferry.local/test/archived:7\n    network_mode: none\n',
    );
    const result = await cli(
      'app',
      'add',
      'archived',
      '--repo',
      factory.repo.dir,
      '--compose',
      compose,
      '--image',
      archive,
    );
    assert.equal(result.code, 0, result.stderr);
    const digest = /@(sha256:[0-9a-f]{64})/.exec(result.stdout)![1]!;
    const pinned = await fs.readFile(
      path.join(factory.repo.dir, 'apps', 'archived', hexOf(digest), 'docker-compose.yml'),
      'utf8',
    );
    assert.match(pinned, /image: ferry\.local\/test\/archived@sha256:[0-9a-f]{64}/);
  });
});
