import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { copySimDevice } from '../../src/sim/sim-device.js';
import { cli } from '../support/cli.js';
import { buildFactory, exportTo, tempDir, type TestFactory } from '../support/factory.js';
import { makeDevice, openTestDevice, statusOf } from '../support/sim-device.js';
import { hashTree } from '../support/tree-hash.js';

let factory: TestFactory;
before(async () => {
  factory = await buildFactory();
});

/** Every file under `root` whose bytes contain `needle`, relative to `root`. */
async function filesMentioning(root: string, needle: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (relative: string): Promise<void> => {
    for (const entry of await fs.readdir(path.join(root, relative), { withFileTypes: true })) {
      const name = path.join(relative, entry.name);
      if (entry.isDirectory()) await walk(name);
      else if (entry.isSymbolicLink()) {
        if ((await fs.readlink(path.join(root, name))).includes(needle)) found.push(name);
      } else if (entry.isFile() && (await fs.readFile(path.join(root, name))).includes(needle)) found.push(name);
    }
  };
  await walk('.');
  return found;
}

const REPOINTED = [path.join('etc', 'sota', 'conf.d', '50-ferry-sim.toml'), path.join('etc', 'fw_env.config')];

describe('a copy of a simulated device', () => {
  for (const bootloader of ['uboot', 'grub'] as const) {
    test(`${bootloader}: the copy is the device byte for byte, except its own paths; nothing in it names the original`, async () => {
      const original = await makeDevice(factory, factory.v1, { bootloader });
      const dir = path.join(await tempDir('copy'), 'device');
      await copySimDevice(original.dir, dir);
      assert.deepEqual(await filesMentioning(dir, original.dir), [], 'files of the copy that name the original');
      assert.equal(await hashTree(dir, REPOINTED), await hashTree(original.dir, REPOINTED));
      const copy = await openTestDevice(dir);
      assert.ok(copy.config.sysroot.startsWith(`${dir}/`), copy.config.sysroot);
      assert.ok(copy.config.storagePath.startsWith(`${dir}/`), copy.config.storagePath);
      assert.ok(copy.config.cmdlineFile.startsWith(`${dir}/`), copy.config.cmdlineFile);
      assert.equal((await statusOf(copy))['current'].name, factory.v1);
    });
  }

  test("keeps the deployment's files hard-linked to the repository's objects, and the deployment immutable as ostree left it", async () => {
    const original = await makeDevice(factory, factory.v1);
    const dir = path.join(await tempDir('copy'), 'device');
    await copySimDevice(original.dir, dir);
    const deployment = async (root: string) => {
      const deployDir = path.join(root, 'sysroot', 'ostree', 'deploy', 'lmp', 'deploy');
      const name = (await fs.readdir(deployDir)).find((entry) => /\.\d+$/.test(entry))!;
      return path.join(deployDir, name);
    };
    const linked = async (root: string) => {
      const stat = await fs.stat(path.join(await deployment(root), 'usr', 'lib', 'os-release'));
      return stat.nlink;
    };
    assert.ok((await linked(original.dir)) > 1, 'ostree checks files out as hard links');
    assert.equal(await linked(dir), await linked(original.dir));
    const flags = (root: string) =>
      deployment(root).then((dir) => spawnSync('lsattr', ['-d', dir], { encoding: 'utf8' }).stdout.split(' ')[0]);
    assert.equal(await flags(dir), await flags(original.dir));
  });

  test('an update on the copy leaves the original as it was; the original still takes the update itself', async () => {
    const original = await makeDevice(factory, factory.v1);
    const dir = path.join(await tempDir('copy'), 'device');
    await copySimDevice(original.dir, dir);
    const untouched = await hashTree(original.dir);
    const copy = await openTestDevice(dir);
    const bundle = await exportTo(factory, factory.v2);
    assert.equal((await cli('install', '--config', copy.configDir, '--src-dir', bundle)).code, 100);
    assert.equal((await cli('sim', 'reboot', dir)).code, 0);
    const ran = await cli('run', '--config', copy.configDir);
    assert.equal(ran.code, 0, ran.stderr);
    assert.equal((await statusOf(copy))['current'].name, factory.v2);
    assert.equal(await hashTree(original.dir), untouched, 'the original changed');
    assert.equal((await statusOf(original))['current'].name, factory.v1);
    assert.equal((await cli('install', '--config', original.configDir, '--src-dir', bundle)).code, 100);
  });

  test('refuses a destination that is not empty', async () => {
    const original = await makeDevice(factory, factory.v1);
    const dir = await tempDir('copy');
    await fs.writeFile(path.join(dir, 'something'), 'x');
    await assert.rejects(copySimDevice(original.dir, dir), /is not empty/);
  });
});
