import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { FerryError } from '../../src/errors.js';
import { loadDeviceConfig } from '../../src/device/config.js';
import { tempDir } from '../support/factory.js';

async function write(dir: string, name: string, text: string): Promise<string> {
  const file = path.join(dir, name);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, text);
  return file;
}

async function refusal(locations: string[]): Promise<string> {
  try {
    await loadDeviceConfig(locations);
  } catch (error) {
    assert.ok(error instanceof FerryError);
    assert.equal(error.outcome, 'CONFIG_INVALID');
    return error.message;
  }
  assert.fail('expected a refusal');
}

describe('device configuration (sota.toml keys)', () => {
  test('a minimal sota.toml gets aktualizr-lite defaults', async () => {
    const dir = await tempDir('config');
    const file = await write(dir, 'sota.toml', '[provision]\nprimary_ecu_hardware_id = "rpi4"\n');
    const config = await loadDeviceConfig([file]);
    assert.equal(config.hardwareId, 'rpi4');
    assert.deepEqual(config.tags, []);
    assert.equal(config.os, 'lmp');
    assert.equal(config.sysroot, '/sysroot');
    assert.equal(config.storagePath, '/var/sota');
    assert.deepEqual(config.bootloader, { kind: 'uboot', fwEnvConfig: '/etc/fw_env.config' });
    assert.equal(config.cmdlineFile, '/proc/cmdline');
    assert.equal(config.rebootSentinelDir, '/var/run/aktualizr-session');
    assert.equal(config.production, false);
  });

  test('a conf.d directory is read in name order, later files overriding earlier keys', async () => {
    const dir = await tempDir('config');
    await write(
      dir,
      'conf.d/10-base.toml',
      '[provision]\nprimary_ecu_hardware_id = "rpi4"\n[pacman]\ntags = "main, devel"\nos = "lmp"\n',
    );
    await write(dir, 'conf.d/20-site.toml', '[pacman]\nos = "other"\n[ferry]\ncmdline_file = "/tmp/cmdline"\n');
    await write(dir, 'conf.d/README', 'not toml, ignored');
    const config = await loadDeviceConfig([path.join(dir, 'conf.d')]);
    assert.deepEqual(config.tags, ['main', 'devel']);
    assert.equal(config.os, 'other');
    assert.equal(config.cmdlineFile, '/tmp/cmdline');
    assert.equal(config.sources.length, 2);
  });

  test('[ferry] health_checks_dir and health_check_timeout_seconds: defaults, set, and a bad timeout refused', async () => {
    const dir = await tempDir('config');
    const base = '[provision]\nprimary_ecu_hardware_id = "rpi4"\n';
    const plain = await loadDeviceConfig([await write(dir, 'a.toml', base)]);
    assert.deepEqual([plain.healthChecksDir, plain.healthCheckTimeoutMs], ['/etc/ferry/check.d', 60_000]);
    const set = await loadDeviceConfig([
      await write(
        dir,
        'b.toml',
        `${base}[ferry]\nhealth_checks_dir = "/opt/checks"\nhealth_check_timeout_seconds = 5\n`,
      ),
    ]);
    assert.deepEqual([set.healthChecksDir, set.healthCheckTimeoutMs], ['/opt/checks', 5000]);
    assert.match(
      await refusal([await write(dir, 'c.toml', `${base}[ferry]\nhealth_check_timeout_seconds = 0\n`)]),
      /health_check_timeout_seconds/,
    );
  });

  test('tags may also be a TOML array', async () => {
    const dir = await tempDir('config');
    const file = await write(
      dir,
      'a.toml',
      '[provision]\nprimary_ecu_hardware_id = "x"\n[pacman]\ntags = ["main", "qa"]\n',
    );
    assert.deepEqual((await loadDeviceConfig([file])).tags, ['main', 'qa']);
  });

  test('every bad input is a CONFIG_INVALID refusal that names the problem', async () => {
    const dir = await tempDir('config');
    assert.match(await refusal([path.join(dir, 'missing.toml')]), /missing\.toml/);
    assert.match(
      await refusal([await write(dir, 'no-hwid.toml', '[pacman]\nos = "lmp"\n')]),
      /primary_ecu_hardware_id is required/,
    );
    assert.match(await refusal([await write(dir, 'broken.toml', '[provision\n')]), /broken\.toml/);
    assert.match(
      await refusal([
        await write(
          dir,
          'mode.toml',
          '[provision]\nprimary_ecu_hardware_id = "x"\n[bootloader]\nrollback_mode = "lilo"\n',
        ),
      ]),
      /rollback_mode/,
    );
    assert.match(
      await refusal([
        await write(dir, 'tags.toml', '[provision]\nprimary_ecu_hardware_id = "x"\n[pacman]\ntags = 3\n'),
      ]),
      /tags/,
    );
    assert.match(
      await refusal([
        await write(dir, 'prod.toml', '[provision]\nprimary_ecu_hardware_id = "x"\n[ferry]\nproduction = "yes"\n'),
      ]),
      /production/,
    );
    const empty = path.join(dir, 'empty');
    await fs.mkdir(empty);
    assert.match(await refusal([empty]), /no \.toml files/);
  });
  test('docker_compose_bin and callback_program are read from [pacman], the callback timeout from [ferry]', async () => {
    const dir = await tempDir('config');
    const defaults = await loadDeviceConfig([
      await write(dir, 'a.toml', '[provision]\nprimary_ecu_hardware_id = "x"\n'),
    ]);
    assert.equal(defaults.composeBin, 'docker-compose');
    assert.equal(defaults.callbackProgram, undefined);
    assert.equal(defaults.callbackTimeoutMs, 60_000);
    const set = await loadDeviceConfig([
      await write(
        dir,
        'b.toml',
        [
          '[provision]',
          'primary_ecu_hardware_id = "x"',
          '[pacman]',
          'docker_compose_bin = "/usr/bin/docker"',
          'callback_program = "/usr/bin/callback-handler"',
          '[ferry]',
          'callback_timeout_seconds = 2.5',
          '',
        ].join('\n'),
      ),
    ]);
    assert.equal(set.composeBin, '/usr/bin/docker');
    assert.equal(set.callbackProgram, '/usr/bin/callback-handler');
    assert.equal(set.callbackTimeoutMs, 2500);
  });

  test('a callback timeout that is not a positive number of seconds up to 3600, or an empty path, is refused', async () => {
    const dir = await tempDir('config');
    for (const value of ['0', '-1', '3601', '"60"']) {
      assert.match(
        await refusal([
          await write(
            dir,
            `timeout-${value.length}-${value.charCodeAt(0)}.toml`,
            `[provision]\nprimary_ecu_hardware_id = "x"\n[ferry]\ncallback_timeout_seconds = ${value}\n`,
          ),
        ]),
        /callback_timeout_seconds/,
      );
    }
    for (const key of ['docker_compose_bin', 'callback_program']) {
      assert.match(
        await refusal([
          await write(dir, `${key}.toml`, `[provision]\nprimary_ecu_hardware_id = "x"\n[pacman]\n${key} = ""\n`),
        ]),
        new RegExp(key),
      );
    }
  });
});
