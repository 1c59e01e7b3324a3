import { promises as fs } from 'node:fs';
import path from 'node:path';
import { runTool } from '../../../src/util/tool.js';
import { mountExfatStick } from '../../support/exfat-stick.js';

/** The smallest FAT32 mkfs.vfat makes with its default cluster size, with room to spare. */
const MIN_FAT32_MIB = 64;

/**
 * A FAT32 USB stick holding `bundleDir` at its root, as a technician's stick would: `mkfs.vfat -F 32` on a sparse
 * image (no partition table: the guest mounts /dev/vdb) and the bundle copied on with mtools (this host's kernel has
 * no vfat). The guest's own kernel mounts it.
 */
export async function buildFat32Stick(bundleDir: string, output: string): Promise<void> {
  const bundleBytes = Number((await runTool('du', ['-s', '-b', bundleDir])).split('\t')[0]);
  const sizeMiB = Math.max(MIN_FAT32_MIB, Math.ceil((bundleBytes * 1.5) / 2 ** 20) + 32);
  await fs.rm(output, { force: true });
  await runTool('mkfs.vfat', ['-F', '32', '-n', 'FERRYSTICK', '-C', output, String(sizeMiB * 1024)]);
  const entries = (await fs.readdir(bundleDir)).map((name) => path.join(bundleDir, name));
  await runTool('mcopy', ['-s', '-i', output, ...entries, '::/']);
}

/**
 * An exFAT stick written on the host through FUSE (exfat-fuse on a loop device, the strictest writer this host
 * has), `fill` given its mount point; returns the image once unmounted and checked by fsck.exfat.
 */
export async function buildExfatStick(sizeMiB: number, fill: (mountPoint: string) => Promise<void>): Promise<string> {
  const stick = await mountExfatStick(sizeMiB);
  if (stick === undefined) throw new Error('this machine cannot mount an exFAT stick (exfat-fuse on a loop device)');
  try {
    await fill(stick.mountPoint);
  } finally {
    stick.unmount();
  }
  await runTool('fsck.exfat', ['-n', stick.image]);
  return stick.image;
}
