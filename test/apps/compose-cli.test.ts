import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ComposeCli } from '../../src/apps/device/compose-cli.js';

describe('the compose command line (v1 or v2, by docker_compose_bin)', () => {
  const HOST = 'unix:///run/engine.sock';

  test('any binary not named docker is docker-compose v1: project options first, the engine in DOCKER_HOST', () => {
    for (const bin of ['docker-compose', '/usr/bin/docker-compose', '/opt/bin/compose']) {
      const cli = new ComposeCli(bin, HOST);
      assert.equal(cli.version, 1);
      assert.deepEqual(cli.command('app', '/apps/app/docker-compose.yml', ['up', '-d', '--remove-orphans']), {
        file: bin,
        args: ['-p', 'app', '-f', '/apps/app/docker-compose.yml', 'up', '-d', '--remove-orphans'],
        env: { DOCKER_HOST: HOST },
      });
    }
  });

  test('a binary named docker is the docker CLI with its compose plugin: -H before compose, the project after it', () => {
    for (const bin of ['docker', '/usr/bin/docker']) {
      const cli = new ComposeCli(bin, HOST);
      assert.equal(cli.version, 2);
      assert.deepEqual(cli.command('app', '/apps/app/compose.yaml', ['down', '--remove-orphans']), {
        file: bin,
        args: ['-H', HOST, 'compose', '-p', 'app', '-f', '/apps/app/compose.yaml', 'down', '--remove-orphans'],
        env: { DOCKER_HOST: HOST },
      });
    }
  });
});
