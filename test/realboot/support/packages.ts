import { promises as fs } from 'node:fs';
import path from 'node:path';
import { runTool } from '../../../src/util/tool.js';

/**
 * The Debian packages the real-boot images are made of that the host does not install: Debian's cloud kernel (the
 * fastest to boot under TCG) and `ostree-boot` (ostree-prepare-root, for the initramfs). They are downloaded with
 * `apt-get download` and unpacked with `dpkg-deb -x`, never installed. The kernel version is resolved at build time:
 * the archive drops old kernels, so a pinned one would stop building.
 */

/** The metapackage that always depends on the current cloud kernel. */
export const CLOUD_KERNEL_METAPACKAGE = 'linux-image-cloud-amd64';

/** Debian's qemu-x86 (32-bit) U-Boot: the 64-bit build resets at "Loading bzImage", this one boots it with zboot. */
export const UBOOT_QEMU_X86_ROM = '/usr/lib/u-boot/qemu-x86/u-boot.rom';

export interface UnpackedKernel {
  /** The package name, linux-image-<version>. */
  readonly packageName: string;
  /** The kernel release, as `uname -r` says it and lib/modules names it. */
  readonly release: string;
  /** The unpacked package: boot/vmlinuz-<release>, lib/modules/<release>/ with modules.dep made here. */
  readonly root: string;
  readonly vmlinuz: string;
}

/** The versioned package `linux-image-cloud-amd64` depends on today. */
export async function resolveCloudKernel(): Promise<string> {
  const resolve = async (): Promise<string | undefined> => {
    const out = await runTool('apt-cache', ['depends', CLOUD_KERNEL_METAPACKAGE]).catch(() => '');
    return /Depends:\s*(linux-image-\d\S*-cloud-amd64)/.exec(out)?.[1];
  };
  // A machine whose package lists are missing or older than the archive (a fresh container) reads them first.
  const name = (await resolve()) ?? (await updatePackageLists().then(resolve));
  if (name === undefined)
    throw new Error(`cannot resolve the cloud kernel: apt-cache depends ${CLOUD_KERNEL_METAPACKAGE} names none`);
  return name;
}

let listsUpdated = false;
async function updatePackageLists(): Promise<void> {
  if (listsUpdated) return;
  await runTool('apt-get', ['update', '-qq']);
  listsUpdated = true;
}

/** Downloads `name` into `dir` (once) and unpacks it into `dir/<name>/`; returns that directory. */
export async function unpackDebianPackage(name: string, dir: string): Promise<string> {
  const root = path.join(dir, name);
  const done = path.join(dir, `${name}.unpacked`);
  if (await exists(done)) return root;
  await fs.mkdir(dir, { recursive: true });
  let deb = await findDeb(dir, name);
  if (deb === undefined) {
    // The lists may name a version the archive has dropped since: read them again and retry once.
    await runTool('apt-get', ['download', '-qq', name], { cwd: dir }).catch(async () => {
      await updatePackageLists();
      await runTool('apt-get', ['download', '-qq', name], { cwd: dir });
    });
    deb = await findDeb(dir, name);
    if (deb === undefined) throw new Error(`apt-get download ${name} left no ${name}_*.deb in ${dir}`);
  }
  await fs.rm(root, { recursive: true, force: true });
  await runTool('dpkg-deb', ['-x', deb, root]);
  await fs.writeFile(done, `${path.basename(deb)}\n`);
  return root;
}

/** The current cloud kernel, unpacked, with the modules.dep its postinst would have made (modprobe needs it). */
export async function unpackCloudKernel(dir: string, packageName: string): Promise<UnpackedKernel> {
  const release = packageName.slice('linux-image-'.length);
  const root = await unpackDebianPackage(packageName, dir);
  if (!(await exists(path.join(root, 'lib/modules', release, 'modules.dep'))))
    await runTool('depmod', ['-b', root, release]);
  return { packageName, release, root, vmlinuz: path.join(root, 'boot', `vmlinuz-${release}`) };
}

/** ostree-prepare-root from the `ostree-boot` package, unpacked. */
export async function unpackPrepareRoot(dir: string): Promise<string> {
  const root = await unpackDebianPackage('ostree-boot', dir);
  return path.join(root, 'usr/lib/ostree/ostree-prepare-root');
}

/**
 * A copy of Debian's qemu-x86 U-Boot ROM whose built-in environment boots at once (`bootdelay=0`, saving 2 s a
 * boot) and looks only at the first virtio disk (`boot_targets=virtio0`). The default environment is a
 * NUL-separated list inside the ROM: each setting is replaced by one of the same length, padded with spaces.
 */
export async function patchUbootRom(source: string, destination: string): Promise<void> {
  const rom = await fs.readFile(source);
  replaceSameLength(rom, /bootdelay=\d+/, 'bootdelay=0');
  replaceSameLength(rom, /boot_targets=[^\0]*/, 'boot_targets=virtio0');
  await fs.writeFile(destination, rom);
}

function replaceSameLength(rom: Buffer, pattern: RegExp, replacement: string): void {
  // latin1 maps every byte to one character, so string offsets are byte offsets.
  const match = pattern.exec(rom.toString('latin1'));
  if (match === null) throw new Error(`the U-Boot ROM has no ${pattern} in its default environment`);
  if (replacement.length > match[0].length)
    throw new Error(`"${replacement}" is longer than "${match[0]}" in the U-Boot ROM`);
  rom.write(replacement.padEnd(match[0].length, ' '), match.index, 'latin1');
}

async function findDeb(dir: string, name: string): Promise<string | undefined> {
  const deb = (await fs.readdir(dir)).find((entry) => entry.startsWith(`${name}_`) && entry.endsWith('.deb'));
  return deb === undefined ? undefined : path.join(dir, deb);
}

export async function exists(file: string): Promise<boolean> {
  return fs.lstat(file).then(
    () => true,
    () => false,
  );
}
