import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, describe, test } from 'node:test';
import { hexOf } from '../../src/apps/format/digest.js';
import { createSimDevice } from '../../src/sim/sim-device.js';
import { buildAppsFactory, type AppsFactory } from '../support/apps-factory.js';
import { cli } from '../support/cli.js';
import { PrivateDockerd } from '../support/dockerd.js';
import { exportTo, tempDir } from '../support/factory.js';
import { openTestDevice } from '../support/sim-device.js';

/**
 * Compose v2 (`[pacman] docker_compose_bin` naming a `docker` CLI) on a real dockerd. Debian 12 packages no compose
 * v2 plugin, so `docker compose` is the stand-in of test/support/compose-v2/, which runs docker-compose v1 with the
 * arguments v2 receives: what this proves is that ferry calls compose the v2 way and finds the containers by their
 * compose labels, not by v1's names.
 */

const STAND_IN = fileURLToPath(new URL('../../../test/support/compose-v2/docker', import.meta.url));

let factory: AppsFactory;
before(async () => {
  factory = await buildAppsFactory();
});

describe('compose v2 (docker compose) on a real dockerd', () => {
  test('an app is brought up, checked and taken down through `docker -H <engine> compose -p <app> -f <file>`', async (t) => {
    const daemon = await PrivateDockerd.start();
    t.after(() => daemon.stop());
    const dir = path.join(await tempDir('compose-v2-device'), 'device');
    await createSimDevice(dir, factory.repo, {
      target: factory.targets.base,
      dockerHost: daemon.host,
      testingWindowSeconds: 1,
    });
    // The stand-in records its calls beside itself: each test gets its own copy.
    const bin = path.join(await tempDir('compose-v2-bin'), 'docker');
    await fs.copyFile(STAND_IN, bin);
    await fs.chmod(bin, 0o755);
    const device = await openTestDevice(dir);
    await fs.writeFile(
      path.join(device.configDir, '90-compose.toml'),
      `[pacman]\ndocker_compose_bin = ${JSON.stringify(bin)}\n`,
    );
    const v2 = await openTestDevice(dir);
    assert.equal(v2.device.engine.compose.version, 2);

    // Up: an apps-only update replaces heartbeat v1 with v2, and run checks it through the testing window.
    const up = await cli(
      'install',
      '--config',
      v2.configDir,
      '--src-dir',
      await exportTo(factory, factory.targets.heartbeatV2),
    );
    assert.equal(up.code, 101, up.stderr);
    await daemon.restart();
    const ran = await cli('run', '--config', v2.configDir);
    assert.equal(ran.code, 0, ran.stderr);
    const containers = await v2.device.engine.containers('heartbeat');
    assert.deepEqual(
      containers.map((container) => [container.service, container.image, container.running]),
      [['main', `ferry.local/test/heartbeat:sha256-${hexOf(factory.images.v2)}`, true]],
    );

    // Down: a target without the app removes it.
    const down = await cli(
      'install',
      '--config',
      v2.configDir,
      '--src-dir',
      await exportTo(factory, factory.targets.noApps),
    );
    assert.equal(down.code, 101, down.stderr);
    await daemon.restart();
    const ranDown = await cli('run', '--config', v2.configDir);
    assert.equal(ranDown.code, 0, ranDown.stderr);
    assert.deepEqual(await v2.device.engine.containers('heartbeat'), []);

    const calls = (await fs.readFile(path.join(path.dirname(bin), 'invocations'), 'utf8')).trimEnd().split('\n');
    const compose = (verb: string) =>
      calls.some((call) =>
        new RegExp(`^-H ${daemon.host} compose -p heartbeat -f \\S+ ${verb} .*--remove-orphans`).test(call),
      );
    assert.ok(compose('up -d'), calls.join('\n'));
    assert.ok(compose('down'), calls.join('\n'));
  });
});
