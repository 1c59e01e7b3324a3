import { promises as fs } from 'node:fs';
import path from 'node:path';
import { configFromTables } from '../../../src/device/config.js';
import { GRUB_VARIABLES, UBOOT_VARIABLES, type BootVariables } from '../../../src/device/bootloader-env.js';
import { devicePaths } from '../../../src/device/paths.js';
import { Sysroot } from '../../../src/ostree/sysroot.js';
import type { FactoryRepo } from '../../../src/repo/factory-repo.js';
import { provisionStorage } from '../../../src/sim/sim-device.js';
import { targetFromMetadata } from '../../../src/tuf/target.js';
import { runTool } from '../../../src/util/tool.js';
import { removeTree } from '../../support/factory.js';
import { VM_HARDWARE_ID, VM_OS } from './rootfs.js';

export type Bootloader = 'grub' | 'uboot';
export const BOOTLOADERS: readonly Bootloader[] = ['grub', 'uboot'];

/** The kernel command line of every deployment: ostree adds `ostree=` to it. */
export const KERNEL_ARGS = ['root=LABEL=otaroot', 'console=ttyS0', 'panic=1', 'quiet'] as const;

/** Boots a trial may take before the bootloader falls back, as ferry's simulator and LmP default it. */
export const BOOTLIMIT = 3;

/** The U-Boot env: 16 KiB, as `fw_env.config` and `env import/export -s 0x4000` in boot.cmd say. */
export const UBOOT_ENV_SIZE = '0x4000';
export const UBOOT_ENV_FILE = 'uboot.env';
export const UBOOT_REDUNDANT_ENV_FILE = 'uboot-redund.env';

/**
 * The MBR layout, in 512-byte sectors: p1 FAT `UBOOTENV` (the U-Boot env and boot.scr, at /boot/efi), p2 ext4
 * `boot` (OSTree's /boot, and GRUB's grub.cfg and grubenv), p3 ext4 `otaroot` (the OSTree sysroot). The gap before
 * p1 holds GRUB's core.img.
 */
export const DISK_LAYOUT = {
  env: { start: 2048, sectors: 65536 },
  boot: { start: 67584, sectors: 524288 },
  root: { start: 591872 },
  totalMiB: 2048,
} as const;

export interface DiskImageOptions {
  readonly bootloader: Bootloader;
  readonly factory: FactoryRepo;
  /** The target the disk boots first, DONE in its storage. */
  readonly target: string;
  /** ferry's boot/ directory: boot/grub/grub.cfg and boot/u-boot/boot.cmd. */
  readonly bootScripts: string;
  /** A scratch directory, emptied and removed when done. */
  readonly workDir: string;
  readonly output: string;
}

/**
 * Builds a bootable disk image without a VM or a loop device: OSTree's sysroot is made in a directory (`ostree admin
 * init-fs`, `os-init`, `deploy`), the storage is provisioned as `ferry sim create` provisions it, each partition is
 * made from its directory (`mkfs.ext4 -d`, `mkfs.vfat` + `mcopy`) and copied into the image at its offset.
 */
export async function buildDiskImage(options: DiskImageOptions): Promise<void> {
  const work = options.workDir;
  await fs.mkdir(work, { recursive: true });
  const sysrootDir = path.join(work, 'sysroot');
  try {
    const sysroot = new Sysroot(sysrootDir, VM_OS);
    await sysroot.initialize();
    await seedBootloaderConfig(sysrootDir, options.bootloader);
    const entry = (await options.factory.targets())[options.target];
    if (entry === undefined) throw new Error(`the factory has no target ${options.target}`);
    const initial = targetFromMetadata(options.target, entry.hashes, entry.custom ?? {});
    if ('invalid' in initial) throw new Error(initial.invalid);
    await sysroot.repo.pullLocal(options.factory.ostree.path, initial.commit, { untrusted: false });
    await runTool('ostree', [
      'admin',
      'deploy',
      `--sysroot=${sysrootDir}`,
      `--os=${VM_OS}`,
      ...KERNEL_ARGS.map((arg) => `--karg=${arg}`),
      initial.commit,
    ]);

    const [deployment] = await sysroot.deployments();
    const etc = path.join(sysroot.deploymentDir(deployment!), 'etc');
    const redundantEnv = options.bootloader === 'uboot' && (await ubootScriptIsRedundant(options.bootScripts));
    await writeDeviceEtc(etc, options.bootloader, redundantEnv);

    const storage = path.join(sysrootDir, 'ostree/deploy', VM_OS, 'var/sota');
    const hostPaths = devicePaths(
      configFromTables([{ provision: { primary_ecu_hardware_id: VM_HARDWARE_ID }, storage: { path: storage } }], []),
    );
    await provisionStorage(hostPaths, options.factory, initial, 'provisioned by the real-boot image builder');

    const bootDir = path.join(sysrootDir, 'boot');
    await fs.mkdir(path.join(bootDir, 'efi'), { recursive: true });
    // ostree's loader entries name /boot/...: on a separate /boot partition that path needs boot -> .
    await fs.symlink('.', path.join(bootDir, 'boot')).catch(() => undefined);
    if (options.bootloader === 'grub') await installGrubConfig(bootDir, options.bootScripts);

    const envPartition = path.join(work, 'p1.img');
    await buildEnvPartition(envPartition, work, options.bootloader, options.bootScripts, redundantEnv);
    const bootPartition = path.join(work, 'p2.img');
    await runTool('mkfs.ext4', ['-q', '-L', 'boot', '-d', bootDir, bootPartition, `${DISK_LAYOUT.boot.sectors / 2}K`]);
    // The sysroot's own /boot stays an empty mount point.
    await fs.rename(bootDir, path.join(work, 'boot-partition'));
    await fs.mkdir(bootDir);
    const rootPartition = path.join(work, 'p3.img');
    const rootKiB = DISK_LAYOUT.totalMiB * 1024 - DISK_LAYOUT.root.start / 2;
    await runTool('mkfs.ext4', ['-q', '-L', 'otaroot', '-d', sysrootDir, rootPartition, `${rootKiB}K`]);

    await assembleDisk(options.output, [
      [envPartition, DISK_LAYOUT.env.start],
      [bootPartition, DISK_LAYOUT.boot.start],
      [rootPartition, DISK_LAYOUT.root.start],
    ]);
    if (options.bootloader === 'grub') await installGrubCore(options.output, work);
  } finally {
    removeTree(work);
  }
}

/**
 * OSTree writes the bootloader's configuration only where it finds one to replace. GRUB here cannot read OSTree's
 * BLS entries, but it reads syslinux.cfg (`syslinux_source`); the PROMPT/TIMEOUT lines make GRUB turn its entries into
 * a menu instead of booting the first one at once. U-Boot reads uEnv.txt, where ostree keeps the default and
 * rollback entries (kernel_image, kernel_image2…).
 */
async function seedBootloaderConfig(sysroot: string, bootloader: Bootloader): Promise<void> {
  const repo = path.join(sysroot, 'ostree/repo');
  const boot = path.join(sysroot, 'boot');
  await fs.mkdir(path.join(boot, 'loader.0'), { recursive: true });
  await fs.symlink('loader.0', path.join(boot, 'loader'));
  if (bootloader === 'grub') {
    await runTool('ostree', [`--repo=${repo}`, 'config', 'set', 'sysroot.bootloader', 'syslinux']);
    await fs.writeFile(path.join(boot, 'loader.0/syslinux.cfg'), 'PROMPT 0\nTIMEOUT 10\n');
    await fs.mkdir(path.join(boot, 'syslinux'));
    await fs.symlink('../loader/syslinux.cfg', path.join(boot, 'syslinux/syslinux.cfg'));
  } else {
    await runTool('ostree', [`--repo=${repo}`, 'config', 'set', 'sysroot.bootloader', 'uboot']);
    await fs.writeFile(path.join(boot, 'loader.0/uEnv.txt'), '');
    await fs.symlink('loader/uEnv.txt', path.join(boot, 'uEnv.txt'));
  }
}

/** A boot.cmd that keeps two env copies names the second file; the single-copy script does not. */
async function ubootScriptIsRedundant(bootScripts: string): Promise<boolean> {
  return (await fs.readFile(path.join(bootScripts, 'u-boot/boot.cmd'), 'utf8')).includes(UBOOT_REDUNDANT_ENV_FILE);
}

/**
 * What differs per disk lives in the initial deployment's /etc, which OSTree's /etc merge carries into every later
 * deployment: the bootloader part of ferry's configuration, and for U-Boot the env tools' fw_env.config.
 */
async function writeDeviceEtc(etc: string, bootloader: Bootloader, redundantEnv: boolean): Promise<void> {
  const confDir = path.join(etc, 'sota/conf.d');
  await fs.mkdir(confDir, { recursive: true });
  const lines =
    bootloader === 'grub'
      ? ['rollback_mode = "grub"', 'grub_env_file = "/boot/grub/grubenv"']
      : ['rollback_mode = "uboot_masked"', 'fw_env_config = "/etc/fw_env.config"'];
  await fs.writeFile(
    path.join(confDir, '60-bootloader.toml'),
    `# Written when the disk image was built: the bootloader of this disk.\n[bootloader]\n${lines.join('\n')}\n`,
  );
  if (bootloader === 'uboot') {
    const files = redundantEnv ? [UBOOT_ENV_FILE, UBOOT_REDUNDANT_ENV_FILE] : [UBOOT_ENV_FILE];
    await fs.writeFile(
      path.join(etc, 'fw_env.config'),
      `# device   offset   size\n${files.map((file) => `/boot/efi/${file} 0x0 ${UBOOT_ENV_SIZE}`).join('\n')}\n`,
    );
  }
}

function initialVariables(vars: BootVariables): string[] {
  return [
    `${vars.bootLimit}=${BOOTLIMIT}`,
    `${vars.bootCounter}=0`,
    `${vars.upgradeAvailable}=0`,
    `${vars.bootUpgradeAvailable}=0`,
    `${vars.rollback}=0`,
  ];
}

async function installGrubConfig(bootDir: string, bootScripts: string): Promise<void> {
  const grubDir = path.join(bootDir, 'grub');
  await fs.mkdir(grubDir, { recursive: true });
  await fs.copyFile(path.join(bootScripts, 'grub/grub.cfg'), path.join(grubDir, 'grub.cfg'));
  const grubenv = path.join(grubDir, 'grubenv');
  await runTool('grub-editenv', [grubenv, 'create']);
  await runTool('grub-editenv', [grubenv, 'set', ...initialVariables(GRUB_VARIABLES)]);
}

/** p1: FAT, label UBOOTENV; for U-Boot the env copies (mkenvimage) and boot.scr (mkimage of boot.cmd). */
async function buildEnvPartition(
  image: string,
  work: string,
  bootloader: Bootloader,
  bootScripts: string,
  redundantEnv: boolean,
): Promise<void> {
  await runTool('mkfs.vfat', ['-n', 'UBOOTENV', '-C', image, String(DISK_LAYOUT.env.sectors / 2)]);
  if (bootloader !== 'uboot') return;
  const envText = path.join(work, 'uboot-env.txt');
  await fs.writeFile(envText, `${initialVariables(UBOOT_VARIABLES).join('\n')}\n`);
  const envImage = path.join(work, UBOOT_ENV_FILE);
  await runTool('mkenvimage', [...(redundantEnv ? ['-r'] : []), '-s', UBOOT_ENV_SIZE, '-o', envImage, envText]);
  await runTool('mcopy', ['-i', image, envImage, `::${UBOOT_ENV_FILE}`]);
  if (redundantEnv) await runTool('mcopy', ['-i', image, envImage, `::${UBOOT_REDUNDANT_ENV_FILE}`]);
  const bootScript = path.join(work, 'boot.scr');
  await runTool('mkimage', [
    '-A',
    'x86',
    '-T',
    'script',
    '-C',
    'none',
    '-n',
    'ferry boot',
    '-d',
    path.join(bootScripts, 'u-boot/boot.cmd'),
    bootScript,
  ]);
  await runTool('mcopy', ['-i', image, bootScript, '::boot.scr']);
}

async function assembleDisk(output: string, partitions: ReadonlyArray<readonly [string, number]>): Promise<void> {
  await fs.rm(output, { force: true });
  await runTool('truncate', ['-s', `${DISK_LAYOUT.totalMiB}M`, output]);
  const table = [
    'label: dos',
    `start=${DISK_LAYOUT.env.start}, size=${DISK_LAYOUT.env.sectors}, type=c, bootable`,
    `start=${DISK_LAYOUT.boot.start}, size=${DISK_LAYOUT.boot.sectors}, type=83`,
    `start=${DISK_LAYOUT.root.start}, type=83`,
  ].join('\n');
  await runTool('sfdisk', ['-q', output], { input: `${table}\n` });
  for (const [partition, start] of partitions)
    await runTool('dd', [
      `if=${partition}`,
      `of=${output}`,
      'bs=512',
      `seek=${start}`,
      'conv=notrunc,sparse',
      'status=none',
    ]);
}

/**
 * GRUB without grub-install: a core.img whose prefix is p2's /grub, embedded in the sectors after the MBR, and the
 * MBR's boot code (the first 440 bytes of boot.img, which loads sector 1), leaving the partition table alone.
 */
export const GRUB_MODULES = [
  'biosdisk',
  'part_msdos',
  'ext2',
  'fat',
  'normal',
  'configfile',
  'loadenv',
  'linux',
  'echo',
  'test',
  'reboot',
  'halt',
  'serial',
  'terminal',
  'syslinuxcfg',
  'linux16',
  'cat',
] as const;

async function installGrubCore(disk: string, work: string): Promise<void> {
  const core = path.join(work, 'core.img');
  await runTool('grub-mkimage', ['-O', 'i386-pc', '-p', '(hd0,msdos2)/grub', '-o', core, ...GRUB_MODULES]);
  const size = (await fs.stat(core)).size;
  if (size > (DISK_LAYOUT.env.start - 1) * 512) throw new Error(`GRUB's core.img (${size} B) does not fit before p1`);
  await runTool('dd', [
    'if=/usr/lib/grub/i386-pc/boot.img',
    `of=${disk}`,
    'bs=440',
    'count=1',
    'conv=notrunc',
    'status=none',
  ]);
  await runTool('dd', [`if=${core}`, `of=${disk}`, 'bs=512', 'seek=1', 'conv=notrunc', 'status=none']);
}
