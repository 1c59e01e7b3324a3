import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { execa } from 'execa';
import { runTool } from '../../../src/util/tool.js';
import { copyHostBinary, installBusybox } from './host-binaries.js';
import type { UnpackedKernel } from './packages.js';

/**
 * The modules the initramfs loads, with their dependencies: the virtio disks (the system disk and a stick, hot-plugged
 * or not), the filesystems of the partitions (ext4, FAT) and of a technician's stick (FAT32, exFAT) with the code
 * pages vfat mounts with by default.
 */
export const INITRAMFS_MODULES = [
  'virtio_pci',
  'virtio_blk',
  'ext4',
  'vfat',
  'exfat',
  'nls_cp437',
  'nls_iso8859_1',
  'nls_ascii',
] as const;

/**
 * The initramfs /init: load the modules, mount `root=` on /sysroot, let ostree-prepare-root set up the deployment
 * `ostree=` names (it bind-mounts the deployment, /sysroot and /var), record the OSTree boot in /run as systemd's
 * initramfs would, and hand over to the deployment's /sbin/init.
 */
const INIT = `#!/bin/sh
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs run /run
for module in ${INITRAMFS_MODULES.join(' ')}; do modprobe "$module" 2>/dev/null; done
root=
for arg in $(cat /proc/cmdline); do
  case "$arg" in root=*) root=\${arg#root=} ;; esac
done
case "$root" in LABEL=*) label=\${root#LABEL=}; root= ;; *) label= ;; esac
i=0
while [ $i -lt 100 ]; do
  [ -n "$label" ] && root=$(findfs "LABEL=$label" 2>/dev/null)
  [ -n "$root" ] && [ -b "$root" ] && break
  sleep 0.1
  i=$((i + 1))
done
fail() { echo "FERRY-INITRAMFS-FAILED $*"; sleep 1; exit 1; }
mount -t ext4 -o rw "$root" /sysroot || fail "cannot mount the root filesystem $root"
/usr/lib/ostree/ostree-prepare-root /sysroot || fail "ostree-prepare-root"
touch /run/ostree-booted
mount --move /run /sysroot/run
umount /sys /proc
exec switch_root /sysroot /sbin/init
`;

/** Builds the initramfs into `output` (a gzip'd newc cpio archive). */
export async function buildInitramfs(options: {
  readonly kernel: UnpackedKernel;
  readonly busybox: string;
  readonly prepareRoot: string;
  readonly output: string;
}): Promise<void> {
  const tree = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-initramfs-'));
  try {
    for (const dir of ['proc', 'sys', 'dev', 'run', 'sysroot', 'tmp', 'etc'])
      await fs.mkdir(path.join(tree, dir), { recursive: true });
    await installBusybox(options.busybox, path.join(tree, 'bin'));
    await fs.symlink('bin', path.join(tree, 'sbin'));
    await copyModules(options.kernel, tree);
    await copyHostBinary(options.prepareRoot, tree, '/usr/lib/ostree/ostree-prepare-root', { mergedUsr: false });
    // ostree-prepare-root checks that it runs in an initramfs.
    await fs.writeFile(path.join(tree, 'etc/initrd-release'), 'NAME="ferry test initramfs"\n');
    await fs.writeFile(path.join(tree, 'init'), INIT, { mode: 0o755 });
    await writeCpio(tree, options.output);
  } finally {
    await fs.rm(tree, { recursive: true, force: true });
  }
}

/** Each module of INITRAMFS_MODULES and what it depends on, as modprobe resolves them, then a depmod of that set. */
async function copyModules(kernel: UnpackedKernel, tree: string): Promise<void> {
  const modulesDir = path.join(kernel.root, 'lib/modules', kernel.release);
  const destination = path.join(tree, 'lib/modules', kernel.release);
  await fs.mkdir(destination, { recursive: true });
  for (const module of INITRAMFS_MODULES) {
    // "insmod <path>" per module to load, "builtin <name>" for those built into the kernel.
    const out = await runTool('modprobe', ['-d', kernel.root, '-S', kernel.release, '--show-depends', module]);
    for (const line of out.split('\n')) {
      const match = /^insmod\s+(\S+)/.exec(line);
      if (match === null) continue;
      const relative = path.relative(modulesDir, match[1]!);
      await fs.mkdir(path.dirname(path.join(destination, relative)), { recursive: true });
      await fs.copyFile(match[1]!, path.join(destination, relative));
    }
  }
  for (const file of ['modules.builtin', 'modules.builtin.modinfo', 'modules.order'])
    await fs.copyFile(path.join(modulesDir, file), path.join(destination, file)).catch(() => undefined);
  await runTool('depmod', ['-b', tree, kernel.release]);
}

async function writeCpio(tree: string, output: string): Promise<void> {
  const entries = await listTree(tree);
  const cpio = `${output}.cpio`;
  await execa('cpio', ['-o', '-H', 'newc', '--quiet'], {
    cwd: tree,
    input: entries.join('\n') + '\n',
    stdout: { file: cpio },
  });
  await pipeline(createReadStream(cpio), createGzip({ level: 1 }), createWriteStream(output));
  await fs.rm(cpio);
}

/** Every path under `root`, relative (`.`-prefixed as `find .` lists them), parents before children. */
async function listTree(root: string): Promise<string[]> {
  const entries: string[] = ['.'];
  const walk = async (relative: string): Promise<void> => {
    for (const entry of (await fs.readdir(path.join(root, relative), { withFileTypes: true })).sort((a, b) =>
      a.name.localeCompare(b.name),
    )) {
      const child = `${relative}/${entry.name}`;
      entries.push(child);
      if (entry.isDirectory()) await walk(child);
    }
  };
  await walk('.');
  return entries;
}
