import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { ostreeArgOf } from '../../src/device/booted-deployment.js';
import { readBootEntries } from '../../src/sim/boot-entries.js';
import { cli } from '../support/cli.js';
import { buildFactory, exportTo, tempDir, type TestFactory } from '../support/factory.js';
import { makeDevice } from '../support/sim-device.js';
import { envCopies, nextWrite, tearWrite } from '../support/torn-env.js';

let factory: TestFactory;
before(async () => {
  factory = await buildFactory();
});

describe('ferry sim (the simulated U-Boot)', () => {
  test('a reboot with no update pending boots the default entry, leaves bootcount alone and empties the volatile directory', async () => {
    const device = await makeDevice(factory, factory.v1);
    await fs.writeFile(path.join(device.config.rebootSentinelDir, 'left-over'), 'x');
    const result = await cli('sim', 'reboot', device.dir);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await fs.readdir(device.config.rebootSentinelDir), []);
    const [entry] = await readBootEntries(device.config.sysroot);
    assert.equal(ostreeArgOf(await fs.readFile(device.config.cmdlineFile, 'utf8')), ostreeArgOf(entry!.options));
    assert.equal((await device.device.boot.env.read())['bootcount'], '0');
  });

  test('with upgrade_available=1 each boot is counted, and after bootlimit boots U-Boot falls back and sets rollback=1', async () => {
    const device = await makeDevice(factory, factory.v1, { bootlimit: 1 });
    const bundle = await exportTo(factory, factory.v3BootFails);
    assert.equal((await cli('install', '--config', device.configDir, '--src-dir', bundle)).code, 100);
    const result = await cli('sim', 'reboot', device.dir);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /did not boot.*fell back/);
    const env = await device.device.boot.env.read();
    assert.equal(env['bootcount'], '2');
    assert.equal(env['rollback'], '1');
    const entries = await readBootEntries(device.config.sysroot);
    assert.equal(
      ostreeArgOf(await fs.readFile(device.config.cmdlineFile, 'utf8')),
      ostreeArgOf(entries[1]!.options),
      'the rollback entry booted',
    );
  });

  test('a good new deployment boots at the first try, counted once', async () => {
    const device = await makeDevice(factory, factory.v1);
    const bundle = await exportTo(factory, factory.v2);
    assert.equal((await cli('install', '--config', device.configDir, '--src-dir', bundle)).code, 100);
    assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
    assert.equal((await device.device.boot.env.read())['bootcount'], '1');
  });

  test('the U-Boot env is redundant, as on a device: a power cut during the boot count write leaves the other copy, and the trial goes on', async () => {
    const device = await makeDevice(factory, factory.v1);
    assert.equal(device.config.bootloader.kind, 'uboot');
    const copies = await envCopies(
      device.config.bootloader.kind === 'uboot' ? device.config.bootloader.fwEnvConfig : '',
    );
    assert.deepEqual(
      copies.map((copy) => path.relative(device.dir, copy)),
      ['boot-env/uboot.env', 'boot-env/uboot-redund.env'],
    );
    const bundle = await exportTo(factory, factory.v2);
    assert.equal((await cli('install', '--config', device.configDir, '--src-dir', bundle)).code, 100);

    // The power fails while the first boot of the trial writes its count.
    const next = await nextWrite(copies, { bootcount: '1' });
    await tearWrite(next.copy, next.bytes, 5);
    const env = await device.device.boot.env.read();
    assert.equal(env['upgrade_available'], '1', 'the trial is still armed');
    assert.equal(env['bootcount'], '0');

    const result = await cli('sim', 'reboot', device.dir);
    assert.equal(result.code, 0, result.stderr);
    assert.equal((await device.device.boot.env.read())['bootcount'], '1', 'the boot after the cut is counted');
    const [entry] = await readBootEntries(device.config.sysroot);
    assert.equal(ostreeArgOf(await fs.readFile(device.config.cmdlineFile, 'utf8')), ostreeArgOf(entry!.options));
  });

  test('a device whose only deployment never boots is reported as bricked (49)', async () => {
    const dir = path.join(await tempDir('device'), 'device');
    const result = await cli('sim', 'create', dir, '--repo', factory.repo.dir, '--target', factory.v3BootFails);
    assert.equal(result.code, 49);
    assert.match(result.stderr, /no deployment booted/);
  });

  test('sim create refuses an unknown target (42) and a non-empty directory (45)', async () => {
    const dir = await tempDir('device');
    assert.equal(
      (await cli('sim', 'create', path.join(dir, 'a'), '--repo', factory.repo.dir, '--target', 'nope-1')).code,
      42,
    );
    await fs.writeFile(path.join(dir, 'file'), 'x');
    assert.equal((await cli('sim', 'create', dir, '--repo', factory.repo.dir, '--target', factory.v1)).code, 45);
  });
});
