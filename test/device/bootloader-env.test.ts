import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { BootControl, GRUB_VARIABLES, GrubEnv, MAX_BOOT_COUNT, UbootEnv } from '../../src/device/bootloader-env.js';
import { tempDir } from '../support/factory.js';
import { nextWrite, tearWrite, writeFwEnvConfig } from '../support/torn-env.js';

/**
 * A power cut during a bootloader env write, without a VM: the write is torn the way a cut tears it (part of the
 * new bytes over the old ones, or a file truncated and not yet written), then the env is read back with the same
 * tools the device uses.
 */

const ARMED = { bootlimit: '3', bootcount: '2', upgrade_available: '1', bootupgrade_available: '0', rollback: '0' };
const ENDED = { bootcount: '0', upgrade_available: '0', rollback: '0' };

/** A file-backed U-Boot env as mkenvimage makes it, one copy or two (redundant), and the fw_env.config naming them. */
async function makeUbootEnv(dir: string, copies: 1 | 2, vars: Record<string, string>): Promise<string[]> {
  await fs.mkdir(dir, { recursive: true });
  const text = path.join(dir, 'env.txt');
  await fs.writeFile(
    text,
    Object.entries(vars)
      .map(([name, value]) => `${name}=${value}\n`)
      .join(''),
  );
  const files = copies === 2 ? ['uboot.env', 'uboot-redund.env'] : ['uboot.env'];
  const paths = files.map((file) => path.join(dir, file));
  const made = spawnSync('mkenvimage', [...(copies === 2 ? ['-r'] : []), '-s', '0x4000', '-o', paths[0]!, text], {
    encoding: 'utf8',
  });
  assert.equal(made.status, 0, made.stderr);
  if (copies === 2) await fs.copyFile(paths[0]!, paths[1]!);
  await writeFwEnvConfig(dir, paths);
  return paths;
}

function printenv(config: string): { status: number | null; stdout: string; stderr: string } {
  return spawnSync('fw_printenv', ['-c', config], { encoding: 'utf8' });
}

describe('a power cut during a U-Boot env write (fw_setenv)', () => {
  test('with one copy, the torn copy fails its crc and the whole env is lost: no boot trial to count', async () => {
    const dir = await tempDir('env-single');
    const [copy] = await makeUbootEnv(dir, 1, ARMED);
    const env = new UbootEnv(path.join(dir, 'fw_env.config'));
    assert.equal((await env.read())['upgrade_available'], '1');
    const next = await nextWrite([copy!], ENDED);
    await tearWrite(next.copy, next.bytes, 4);

    const printed = printenv(env.fwEnvConfig);
    assert.notEqual(printed.status, 0, 'fw_printenv finds no valid env');
    assert.match(printed.stderr, /Cannot read environment/);
    await assert.rejects(env.read(), /Cannot read environment/);
  });

  test('with two copies, the torn one is the copy being written, and ferry and fw_printenv read the other, intact one', async () => {
    const dir = await tempDir('env-redundant');
    const copies = await makeUbootEnv(dir, 2, { ...ARMED, bootcount: '0', upgrade_available: '0' });
    const env = new UbootEnv(path.join(dir, 'fw_env.config'));
    await env.update({ upgrade_available: '1', bootcount: '2' });
    assert.deepEqual(await env.read(), ARMED);

    const next = await nextWrite(copies, ENDED);
    const intact = copies.find((copy) => copy !== next.copy)!;
    const intactBefore = await fs.readFile(intact);
    await tearWrite(next.copy, next.bytes, 5);

    // The tear is real: the written copy alone is no env any more.
    const tornAlone = printenv(await writeFwEnvConfig(await tempDir('env-torn-alone'), [next.copy]));
    assert.notEqual(tornAlone.status, 0, 'the torn copy fails its crc');
    assert.deepEqual(await fs.readFile(intact), intactBefore, 'fw_setenv wrote only the copy not in use');

    const printed = printenv(env.fwEnvConfig);
    assert.equal(printed.status, 0, printed.stderr);
    assert.deepEqual(await env.read(), ARMED, 'the env before the cut: the trial is still armed, its count kept');

    // The next write goes over the torn copy, and both tools agree on the result.
    await env.update(ENDED);
    assert.deepEqual(await env.read(), { ...ARMED, ...ENDED });
    assert.deepEqual(await fs.readFile(intact), intactBefore, 'the intact copy is left as it was');
  });
});

describe('a power cut during a GRUB env write (grub-editenv)', () => {
  async function makeGrubEnv(dir: string): Promise<GrubEnv> {
    const file = path.join(dir, 'grubenv');
    for (const args of [['create'], ['set', ...Object.entries(ARMED).map(([name, value]) => `${name}=${value}`)]]) {
      const result = spawnSync('grub-editenv', [file, ...args], { encoding: 'utf8' });
      assert.equal(result.status, 0, result.stderr);
    }
    return new GrubEnv(file);
  }

  /**
   * A grub-editenv that the power cut stops where the real one is most exposed: it has opened its file for
   * writing, which truncates it (fopen "wb"), and dies before it writes.
   */
  async function cutGrubEditenv(): Promise<string> {
    const bin = await tempDir('cut-grub-editenv');
    const tool = path.join(bin, 'grub-editenv');
    await fs.writeFile(tool, '#!/bin/sh\n: > "$1"\nkill -9 $$\n', { mode: 0o755 });
    return bin;
  }

  async function withPath<T>(dir: string, run: () => Promise<T>): Promise<T> {
    const saved = process.env['PATH'];
    process.env['PATH'] = `${dir}:${saved ?? ''}`;
    try {
      return await run();
    } finally {
      process.env['PATH'] = saved;
    }
  }

  test('a truncated grubenv is what grub-editenv alone leaves: GRUB and grub-editenv reject it', async () => {
    const dir = await tempDir('grubenv-raw');
    const env = await makeGrubEnv(dir);
    const cut = spawnSync('sh', [
      '-c',
      `PATH=${await cutGrubEditenv()}:$PATH grub-editenv "$1" set upgrade_available=0`,
      'sh',
      env.file,
    ]);
    assert.notEqual(cut.status, 0);
    assert.equal((await fs.stat(env.file)).size, 0, 'the file was truncated and never written');
    await assert.rejects(env.read(), /invalid environment block|grub-editenv/);
  });

  test('ferry edits a copy and renames it over grubenv: a cut during the edit leaves grubenv as it was', async () => {
    const dir = await tempDir('grubenv-ferry');
    const env = await makeGrubEnv(dir);
    const before = await fs.readFile(env.file);
    await withPath(await cutGrubEditenv(), async () => {
      await assert.rejects(env.update(ENDED));
    });
    assert.deepEqual(await fs.readFile(env.file), before, 'grubenv is byte-identical');
    assert.deepEqual(await env.read(), ARMED, 'the trial is still armed, its count kept');

    // The next write (the power is back) goes through, over whatever the cut left beside grubenv.
    await env.update(ENDED);
    assert.deepEqual(await env.read(), { ...ARMED, ...ENDED });
    assert.deepEqual(await fs.readdir(dir), ['grubenv'], 'nothing is left beside grubenv');
  });
});

describe('the boot count of the model', () => {
  test('stops where the shipped boot scripts stop counting (9), as a real boot does', async () => {
    const dir = await tempDir('grubenv-count');
    const file = path.join(dir, 'grubenv');
    const created = spawnSync('grub-editenv', [file, 'set', 'upgrade_available=1', 'boot_counter=8', 'bootlimit=3']);
    assert.equal(created.status, 0);
    const boot = new BootControl(new GrubEnv(file), GRUB_VARIABLES);
    assert.equal(await boot.countBoot(), MAX_BOOT_COUNT);
    assert.equal(await boot.countBoot(), MAX_BOOT_COUNT, 'the table has no entry past 9');
    assert.equal((await boot.env.read())['boot_counter'], '9');
  });
});
