import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { OstreeRepo } from '../ostree/ostree-repo.js';

/** A commit that carries this file does not boot in the simulator: the watchdog resets until U-Boot falls back. */
export const BOOT_FAILS_MARKER = 'usr/lib/ferry-sim/boot-fails';
/** A commit that carries this file ships a boot firmware of that version; booting it updates the firmware. */
export const BOOT_FIRMWARE_MARKER = 'usr/lib/ferry-sim/boot-firmware';
/** Debian's static busybox: the shell of the simulator's rootfs and of the images `sim image` builds. */
export const BUSYBOX = '/bin/busybox';

export interface SimRootfsOptions {
  readonly repo: string;
  readonly branch: string;
  readonly version: string;
  readonly bootFails?: boolean;
  readonly bootFirmware?: string | undefined;
  readonly busybox?: string;
}

/**
 * Commits a small but bootable-looking rootfs: Debian's static busybox, a kernel and initramfs stub (distinct per
 * version, so each version gets its own boot checksum), and os-release. `ostree admin deploy` needs exactly these.
 */
export async function commitSimRootfs(options: SimRootfsOptions): Promise<string> {
  const tree = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-rootfs-'));
  try {
    const kernelVersion = `6.1.0-ferry${options.version}`;
    const modules = path.join(tree, 'usr/lib/modules', kernelVersion);
    await fs.mkdir(modules, { recursive: true });
    await fs.mkdir(path.join(tree, 'usr/bin'), { recursive: true });
    await fs.mkdir(path.join(tree, 'usr/etc'), { recursive: true });
    await fs.copyFile(options.busybox ?? BUSYBOX, path.join(tree, 'usr/bin/busybox'));
    await fs.chmod(path.join(tree, 'usr/bin/busybox'), 0o755);
    for (const applet of ['sh', 'ls', 'cat', 'echo', 'sleep'])
      await fs.symlink('busybox', path.join(tree, 'usr/bin', applet));
    await fs.symlink('usr/bin', path.join(tree, 'bin'));
    await fs.writeFile(path.join(modules, 'vmlinuz'), `ferry simulated kernel ${kernelVersion}\n`);
    await fs.writeFile(path.join(modules, 'initramfs.img'), `ferry simulated initramfs ${kernelVersion}\n`);
    await fs.writeFile(
      path.join(tree, 'usr/lib/os-release'),
      `ID=ferry-sim\nNAME="Ferry simulated OS"\nVERSION_ID=${options.version}\nPRETTY_NAME="Ferry simulated OS ${options.version}"\n`,
    );
    await fs.writeFile(path.join(tree, 'usr/etc/hostname'), 'ferry-sim\n');
    if (options.bootFirmware !== undefined) {
      await fs.mkdir(path.dirname(path.join(tree, BOOT_FIRMWARE_MARKER)), { recursive: true });
      await fs.writeFile(path.join(tree, BOOT_FIRMWARE_MARKER), `${options.bootFirmware}\n`);
    }
    if (options.bootFails) {
      await fs.mkdir(path.dirname(path.join(tree, BOOT_FAILS_MARKER)), { recursive: true });
      await fs.writeFile(path.join(tree, BOOT_FAILS_MARKER), 'this rootfs panics at boot\n');
    }
    const repo = (await fs.stat(path.join(options.repo, 'objects')).then(
      () => true,
      () => false,
    ))
      ? new OstreeRepo(options.repo)
      : await OstreeRepo.create(options.repo, 'archive');
    return await repo.commitTree({ tree, branch: options.branch, subject: `ferry sim rootfs ${options.version}` });
  } finally {
    await fs.rm(tree, { recursive: true, force: true });
  }
}
