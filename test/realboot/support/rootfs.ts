import { promises as fs } from 'node:fs';
import path from 'node:path';
import { copyHostBinary, installBusybox } from './host-binaries.js';
import { exists } from './packages.js';

/** The hardware id, tag and OSTree os of the test machine: what its targets carry and its configuration says. */
export const VM_HARDWARE_ID = 'qemu-x86-64';
export const VM_TAG = 'main';
export const VM_OS = 'lmp';

/** Printed by /sbin/init once the machine is up: the rootfs version and the `ostree=` argument it booted. */
export const BOOTED_MARKER = 'FERRY-VM-BOOTED';
/** Printed by the /sbin/init of a rootfs that does not boot, just before it exits (and the kernel panics). */
export const BROKEN_INIT_MARKER = 'FERRY-VM-INIT-DIES';
/** The rootfs's version, as /sbin/init prints it. */
export const VERSION_FILE = 'usr/lib/ferry-vm/version';
/** Present in /etc (or `ferry.no-boot-hook` on the kernel command line): /sbin/init does not run the boot hook. */
export const NO_BOOT_HOOK_FILE = '/etc/ferry-vm/no-boot-hook';
/** ferry's boot integration inside the rootfs. */
export const BOOT_HOOK = '/usr/lib/ferry/integration/ferry-boot';

/** The host binaries the guest needs beside busybox: OSTree, both bootloaders' env tools, node for ferry. */
const HOST_BINARIES = ['/usr/bin/ostree', '/usr/bin/fw_printenv', '/usr/bin/fw_setenv', '/usr/bin/grub-editenv'];

/**
 * A stand-in for systemd, as the busybox init of a small device would be: the pseudo filesystems, /var, /boot and
 * the env partition at /boot/efi (and /boot again under /sysroot, where `ostree admin --sysroot=/sysroot` writes the
 * bootloader configuration), the marker the tests wait for, the boot hook, then a root shell on the console for ever.
 */
const INIT = `#!/bin/sh
export PATH=/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
grep -q ' /run ' /proc/mounts || mount -t tmpfs run /run
mount -t tmpfs tmp /tmp
mount -o remount,rw /
mount -t ext4 "$(findfs LABEL=boot)" /boot
mount --bind /boot /sysroot/boot
mount -t vfat "$(findfs LABEL=UBOOTENV)" /boot/efi
hostname ferry-vm
deployment=
for arg in $(cat /proc/cmdline); do
  case "$arg" in ostree=*) deployment=\${arg#ostree=} ;; esac
done
# /var is shared by every deployment of the os (/ostree/boot.N/<os>/…); Debian's ostree-prepare-root leaves it to
# systemd (ostree-system-generator's var.mount), so it is mounted here.
stateroot=$(echo "$deployment" | cut -d/ -f4)
mount --bind "/sysroot/ostree/deploy/$stateroot/var" /var
echo "${BOOTED_MARKER} version=$(cat /${VERSION_FILE}) deployment=$deployment"
if [ -x ${BOOT_HOOK} ] && [ ! -e ${NO_BOOT_HOOK_FILE} ] && ! grep -qw ferry.no-boot-hook /proc/cmdline; then
  ${BOOT_HOOK} boot
fi
cd /
while :; do setsid cttyhack sh -l; done
`;

const BROKEN_INIT = `#!/bin/sh
echo "${BROKEN_INIT_MARKER} version=$(cat /${VERSION_FILE})"
exit 1
`;

/** ferry's device configuration in the commit; the bootloader part is per disk, in the deployment's /etc. */
const FERRY_CONFIG = `# ferry on the real-boot test machine. Keys follow aktualizr-lite's sota.toml; [ferry] holds ferry's own.
[provision]
primary_ecu_hardware_id = "${VM_HARDWARE_ID}"

[pacman]
type = "ostree"
os = "${VM_OS}"
sysroot = "/sysroot"
tags = "${VM_TAG}"

[storage]
path = "/var/sota"

[bootloader]
reboot_sentinel_dir = "/run/aktualizr-session"
reboot_sentinel_name = "need_reboot"

[ferry]
testing_window_seconds = 0
`;

/** The boot hook's settings on this machine: a plain init (no systemctl) and no container engine. */
const BOOT_HOOK_SETTINGS = `# ferry-boot on the real-boot test machine: busybox init, no container engine.
FERRY_REBOOT="reboot -f"
FERRY_ENGINE_CHECK=""
`;

export interface RootfsOptions {
  readonly version: string;
  /** /sbin/init exits at once: the kernel panics, and `panic=1` resets the machine. */
  readonly initDies?: boolean;
  readonly kernelRelease: string;
  readonly vmlinuz: string;
  readonly initramfs: string;
  readonly busybox: string;
  /** The ferry checkout: its package.json, the bundles under dist/src/cli, and integration/ if there is one. */
  readonly ferryRoot: string;
}

/**
 * Writes into `tree` (which must not exist) a rootfs OSTree can commit and deploy: everything under /usr (with /bin,
 * /sbin, /lib, /lib64 linking there), the kernel and initramfs under /usr/lib/modules/<release>, /usr/etc for
 * OSTree's /etc, ferry and its configuration.
 */
export async function buildRootfsTree(tree: string, options: RootfsOptions): Promise<void> {
  for (const dir of ['usr/bin', 'usr/sbin', 'usr/lib', 'usr/lib64', 'usr/etc'])
    await fs.mkdir(path.join(tree, dir), { recursive: true });
  for (const dir of ['boot', 'dev', 'proc', 'sys', 'run', 'tmp', 'var', 'sysroot', 'mnt'])
    await fs.mkdir(path.join(tree, dir));
  for (const [link, target] of [
    ['bin', 'usr/bin'],
    ['sbin', 'usr/sbin'],
    ['lib', 'usr/lib'],
    ['lib64', 'usr/lib64'],
    ['ostree', 'sysroot/ostree'],
  ] as const)
    await fs.symlink(target, path.join(tree, link));

  await installBusybox(options.busybox, path.join(tree, 'usr/bin'));
  for (const binary of [...HOST_BINARIES, process.execPath])
    await copyHostBinary(binary, tree, `/usr/bin/${path.basename(binary)}`, { mergedUsr: true });

  const modules = path.join(tree, 'usr/lib/modules', options.kernelRelease);
  await fs.mkdir(modules, { recursive: true });
  await fs.copyFile(options.vmlinuz, path.join(modules, 'vmlinuz'));
  await fs.copyFile(options.initramfs, path.join(modules, 'initramfs.img'));

  await installFerry(tree, options.ferryRoot);

  await writeFile(tree, VERSION_FILE, `${options.version}\n`);
  await writeFile(tree, 'usr/sbin/init', options.initDies ? BROKEN_INIT : INIT, 0o755);
  await writeFile(
    tree,
    'usr/etc/os-release',
    `ID=ferry-vm\nVERSION_ID=${options.version}\nPRETTY_NAME="ferry test machine ${options.version}"\n`,
  );
  await writeFile(tree, 'usr/etc/passwd', 'root:x:0:0:root:/root:/bin/sh\n');
  await writeFile(tree, 'usr/etc/group', 'root:x:0:\n');
  await writeFile(tree, 'usr/etc/hostname', 'ferry-vm\n');
  await writeFile(tree, 'usr/etc/profile', 'export PATH=/usr/bin:/usr/sbin\nexport HOME=/tmp\nPS1="# "\n');
}

/** The esbuild bundles are self-contained; the program reads ../../../package.json for its version at run time. */
async function installFerry(tree: string, ferryRoot: string): Promise<void> {
  const lib = path.join(tree, 'usr/lib/ferry');
  await fs.mkdir(path.join(lib, 'dist/src/cli'), { recursive: true });
  await fs.copyFile(path.join(ferryRoot, 'package.json'), path.join(lib, 'package.json'));
  for (const command of ['ferry', 'aklite-offline']) {
    await fs.copyFile(
      path.join(ferryRoot, 'dist/src/cli', `${command}.js`),
      path.join(lib, 'dist/src/cli', `${command}.js`),
    );
    await writeFile(
      tree,
      `usr/bin/${command}`,
      `#!/bin/sh\nexec node /usr/lib/ferry/dist/src/cli/${command}.js "$@"\n`,
      0o755,
    );
  }
  if (await exists(path.join(ferryRoot, 'integration')))
    await fs.cp(path.join(ferryRoot, 'integration'), path.join(lib, 'integration'), { recursive: true });
  await writeFile(tree, 'usr/lib/sota/conf.d/50-ferry.toml', FERRY_CONFIG);
  await writeFile(tree, 'usr/etc/default/ferry-boot', BOOT_HOOK_SETTINGS);
}

async function writeFile(tree: string, relative: string, content: string, mode = 0o644): Promise<void> {
  const file = path.join(tree, relative);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, content, { mode });
  await fs.chmod(file, mode);
}
