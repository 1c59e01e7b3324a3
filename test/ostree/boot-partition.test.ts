import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, test, type TestContext } from 'node:test';
import { GrubEnv } from '../../src/device/bootloader-env.js';
import { Sysroot } from '../../src/ostree/sysroot.js';
import { commitSimRootfs } from '../../src/sim/rootfs.js';
import { tempDir } from '../support/factory.js';

/**
 * /boot on an ext4 partition of its own, as on the real-boot machine: what a bootloader reads from it (the on-disk
 * blocks, without replaying the journal, as U-Boot's ext4load and GRUB do; `debugfs` reads them the same way) must be
 * what Linux sees once `deploy` or `undeploy` returns. Before the fix the `loader` symlink that OSTree swaps last
 * lived in the journal only, and a power cut then left a machine that booted a configuration Linux had removed.
 */

function run(file: string, args: readonly string[]): string {
  const result = spawnSync(file, args, { encoding: 'utf8' });
  assert.equal(result.status, 0, `${file} ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

/**
 * A fresh ext4 image of `size` loop-mounted at `mountPoint`, unmounted after the test; returns the image. Only a
 * machine that cannot loop-mount may skip (undefined); CI can, so there it is a failure.
 */
async function mountBootPartition(
  t: TestContext,
  dir: string,
  mountPoint: string,
  size: string,
): Promise<string | undefined> {
  const image = path.join(dir, 'boot.img');
  run('mkfs.ext4', ['-q', '-L', 'boot', image, size]);
  const mount = spawnSync('mount', ['-o', 'loop', image, mountPoint], { encoding: 'utf8' });
  if (mount.status !== 0) {
    assert.notEqual(process.env['CI'], 'true', `cannot loop-mount an ext4 image in CI: ${mount.stderr}`);
    t.skip('this machine cannot loop-mount an ext4 image');
    return undefined;
  }
  after(() => spawnSync('umount', [mountPoint]));
  return image;
}

/** The target of /loader as the blocks on disk have it, read without the journal. */
function loaderOnDisk(image: string): string {
  const out = run('debugfs', ['-R', 'stat /loader', image]);
  const link = /Fast link dest: "([^"]*)"/.exec(out);
  return link === null ? `(no loader symlink on disk: ${out.split('\n')[0]})` : link[1]!;
}

test('deploy and undeploy leave /boot on disk as Linux sees it: a bootloader that skips the journal boots it', async (t) => {
  const dir = await tempDir('boot-partition');
  const sysroot = new Sysroot(path.join(dir, 'sysroot'), 'lmp');
  await sysroot.initialize();
  const boot = path.join(sysroot.path, 'boot');
  const image = await mountBootPartition(t, dir, boot, '64M');
  if (image === undefined) return;

  const build = path.join(dir, 'build');
  const v1 = await commitSimRootfs({ repo: build, branch: 'test/v1', version: '1' });
  const v2 = await commitSimRootfs({ repo: build, branch: 'test/v2', version: '2' });
  // A deploy prunes what no deployment or ref holds: each commit is pulled just before it is deployed.
  const pullAndDeploy = async (commit: string) => {
    await sysroot.repo.pullLocal(build, commit, { untrusted: true });
    await sysroot.deploy(commit);
  };
  const steps: Array<[string, () => Promise<void>]> = [
    ['deploy v1', () => pullAndDeploy(v1)],
    ['deploy v2', () => pullAndDeploy(v2)],
    ['undeploy the rollback', () => sysroot.undeploy(1)],
  ];
  for (const [name, step] of steps) {
    await step();
    const linux = await fs.readlink(path.join(boot, 'loader'));
    assert.equal(loaderOnDisk(image), linux, `after ${name}: the bootloader reads the loader Linux wrote`);
  }
});

test("ferry's GRUB env writes leave /boot on disk as Linux sees it: GRUB reads (and save_env writes) the new grubenv", async (t) => {
  const dir = await tempDir('boot-partition-grubenv');
  const boot = path.join(dir, 'boot');
  await fs.mkdir(boot);
  const image = await mountBootPartition(t, dir, boot, '16M');
  if (image === undefined) return;
  await fs.mkdir(path.join(boot, 'grub'));
  const file = path.join(boot, 'grub', 'grubenv');
  run('grub-editenv', [file, 'create']);
  run('sync', ['-f', file]);
  const env = new GrubEnv(file);
  for (const value of ['1', '0', '1']) {
    await env.update({ upgrade_available: value, boot_counter: '0' });
    const onDisk = run('debugfs', ['-R', 'cat /grub/grubenv', image]);
    assert.match(onDisk, new RegExp(`^upgrade_available=${value}$`, 'm'), `the blocks GRUB reads say ${value}`);
  }
});
