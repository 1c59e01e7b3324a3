import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { runTool } from '../../src/util/tool.js';
import { tempDir } from '../support/factory.js';
import {
  BOOTLIMIT,
  DISK_LAYOUT,
  UBOOT_ENV_FILE,
  UBOOT_ENV_SIZE,
  UBOOT_REDUNDANT_ENV_FILE,
} from './support/disk-image.js';
import { FERRY_ROOT, realbootImages, realbootSkipReason, type RealbootImages } from './support/images.js';
import { UBOOT_QEMU_X86_ROM } from './support/packages.js';

/**
 * The built images, checked without booting them: the partition table the boot scripts and /sbin/init rely on, the
 * U-Boot env copies the device's own fw_printenv reads, the patched U-Boot ROM. A boot that fails is slow to read;
 * these say which part of the image is wrong.
 */
let images: RealbootImages;

before(async () => {
  if (realbootSkipReason() === false) images = await realbootImages();
});

describe('the real-boot images', { skip: realbootSkipReason() }, () => {
  test('both disks have the MBR layout: FAT env partition (bootable), ext4 /boot, ext4 root', async () => {
    for (const disk of Object.values(images.disks)) {
      const table = JSON.parse(await runTool('sfdisk', ['--json', disk])).partitiontable;
      assert.equal(table.label, 'dos');
      const partitions = table.partitions.map(
        (p: { start: number; size: number; type: string; bootable?: boolean }) => [
          p.start,
          p.type,
          p.bootable === true,
        ],
      );
      assert.deepEqual(partitions, [
        [DISK_LAYOUT.env.start, 'c', true],
        [DISK_LAYOUT.boot.start, '83', false],
        [DISK_LAYOUT.root.start, '83', false],
      ]);
    }
  });

  test("the U-Boot disk holds boot.scr and the env in the layout its boot.cmd reads, with ferry's initial variables", async () => {
    const dir = await tempDir('realboot-env');
    const partition = `${images.disks.uboot}@@${DISK_LAYOUT.env.start * 512}`;
    const listing = await runTool('mdir', ['-b', '-i', partition, '::/']);
    const names = listing
      .split('\n')
      .map((line) => path.basename(line.trim()))
      .filter((name) => name !== '');
    // Two copies when ferry's boot.cmd keeps a redundant env, as the device's fw_env.config then names two files.
    const bootCmd = await fs.readFile(path.join(FERRY_ROOT, 'boot/u-boot/boot.cmd'), 'utf8');
    const copies = bootCmd.includes(UBOOT_REDUNDANT_ENV_FILE)
      ? [UBOOT_ENV_FILE, UBOOT_REDUNDANT_ENV_FILE]
      : [UBOOT_ENV_FILE];
    assert.deepEqual(names.sort(), ['boot.scr', ...copies].sort(), listing);
    for (const copy of copies) await runTool('mcopy', ['-i', partition, `::${copy}`, path.join(dir, copy)]);
    const config = path.join(dir, 'fw_env.config');
    await fs.writeFile(config, copies.map((copy) => `${path.join(dir, copy)} 0x0 ${UBOOT_ENV_SIZE}\n`).join(''));
    const env = await runTool('fw_printenv', ['-c', config]);
    for (const line of [`bootlimit=${BOOTLIMIT}`, 'bootcount=0', 'upgrade_available=0', 'rollback=0'])
      assert.match(env, new RegExp(`^${line}$`, 'm'));
  });

  test("the U-Boot ROM is Debian's, the same size, booting at once from the first virtio disk", async () => {
    const [original, patched] = await Promise.all([fs.readFile(UBOOT_QEMU_X86_ROM), fs.readFile(images.ubootRom)]);
    assert.equal(patched.length, original.length);
    const text = patched.toString('latin1');
    assert.match(text, /\0bootdelay=0 *\0/);
    assert.match(text, /\0boot_targets=virtio0 *\0/);
  });
});
