import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FactoryRepo } from '../../../src/repo/factory-repo.js';
import { BUSYBOX } from '../../../src/sim/rootfs.js';
import { processAlive } from '../../../src/util/process-alive.js';
import { runTool } from '../../../src/util/tool.js';
import { removeTree } from '../../support/factory.js';
import { BOOTLOADERS, buildDiskImage, type Bootloader } from './disk-image.js';
import { buildVmFactory, type VmTargets } from './factory.js';
import { buildInitramfs } from './initramfs.js';
import {
  exists,
  patchUbootRom,
  resolveCloudKernel,
  UBOOT_QEMU_X86_ROM,
  unpackCloudKernel,
  unpackPrepareRoot,
} from './packages.js';

/** The ferry checkout these files were built from: dist/test/realboot/support/ is four levels down. */
export const FERRY_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

/** Where the built images are kept between runs; one directory per hash of their inputs. */
export function realbootCacheRoot(): string {
  return process.env['FERRY_REALBOOT_CACHE'] ?? '/var/tmp/ferry-realboot';
}

/**
 * Why the real-boot tests cannot run on this machine (QEMU is not installed), or false. Under CI=true it is always
 * false: there a machine without QEMU fails the lane instead of skipping it.
 */
export function realbootSkipReason(): string | false {
  if (process.env['CI'] === 'true') return false;
  const qemu = spawnSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' });
  return qemu.status === 0 ? false : 'qemu-system-x86_64 is not installed (bash scripts/setup.sh installs it)';
}

/** Everything the real-boot tests boot, built once per machine and set of inputs. */
export interface RealbootImages {
  readonly dir: string;
  readonly kernelPackage: string;
  /** Debian's qemu-x86 U-Boot with no boot delay. */
  readonly ubootRom: string;
  /** A disk per bootloader that boots target v1; copy it (copyDisk) before booting it. */
  readonly disks: Readonly<Record<Bootloader, string>>;
  /** The factory repository whose targets the disks run; `ferry export --repo <factory.dir>` makes sticks. */
  readonly factory: FactoryRepo;
  readonly targets: VmTargets;
  readonly commits: Readonly<Record<string, string>>;
  /** ferry's boot hook (integration/ferry-boot) is in the rootfs: /sbin/init runs it at every boot. */
  readonly bootHook: boolean;
  /** Seconds the build took, or 0 when the images came from the cache. */
  readonly buildSeconds: number;
}

interface Manifest {
  readonly kernelPackage: string;
  readonly bootHook: boolean;
  readonly targets: VmTargets;
  readonly commits: Record<string, string>;
}

const MANIFEST = 'images.json';
/** The modules whose code decides what is built (the VM driver and the guest helpers do not). */
const BUILDER_MODULES = ['packages', 'host-binaries', 'initramfs', 'rootfs', 'factory', 'disk-image', 'images'];
/** How long to wait for another process that builds the same images. */
const BUILD_WAIT_MS = 20 * 60_000;

/**
 * The cached build of the disks, the U-Boot ROM and the factory repository. Every real-boot test file calls this; the
 * first one on a machine builds (under a lock, since several may ask at once), the others find the result. The key
 * is a hash of the inputs: the builder's code, boot/ and integration/, ferry's command bundles, the kernel package.
 */
export async function realbootImages(): Promise<RealbootImages> {
  const cacheRoot = realbootCacheRoot();
  await fs.mkdir(cacheRoot, { recursive: true });
  const kernelPackage = await resolveCloudKernel();
  const key = await inputsKey(kernelPackage);
  const dir = path.join(cacheRoot, key);
  let buildSeconds = 0;
  if (!(await exists(path.join(dir, MANIFEST)))) {
    const started = Date.now();
    await withBuildLock(`${dir}.lock`, async () => {
      if (await exists(path.join(dir, MANIFEST))) return;
      await build(dir, cacheRoot, kernelPackage);
    });
    buildSeconds = (Date.now() - started) / 1000;
  }
  const manifest = JSON.parse(await fs.readFile(path.join(dir, MANIFEST), 'utf8')) as Manifest;
  return {
    dir,
    kernelPackage: manifest.kernelPackage,
    ubootRom: path.join(dir, 'u-boot.rom'),
    disks: { grub: path.join(dir, 'disk-grub.img'), uboot: path.join(dir, 'disk-uboot.img') },
    factory: new FactoryRepo(path.join(dir, 'factory/repo')),
    targets: manifest.targets,
    commits: manifest.commits,
    bootHook: manifest.bootHook,
    buildSeconds,
  };
}

/**
 * A serial log for one VM of one test, kept after the run (test directories are removed) so that a failure can be
 * read: `${os.tmpdir()}/ferry-realboot-logs/<name>.log`, started afresh.
 */
export async function serialLogFile(name: string): Promise<string> {
  const dir = path.join(os.tmpdir(), 'ferry-realboot-logs');
  await fs.mkdir(dir, { recursive: true });
  const file = path.join(dir, `${name}.log`);
  await fs.rm(file, { force: true });
  return file;
}

/**
 * A private copy of the factory repository in `dir`: exporting a bundle counts bundle versions in the repository, and
 * the cached one stays as built.
 */
export async function copyFactory(images: RealbootImages, dir: string): Promise<FactoryRepo> {
  const copy = path.join(dir, 'factory');
  await runTool('cp', ['-a', images.factory.dir, copy]);
  return new FactoryRepo(copy);
}

/** A private copy of a built disk in `dir`, sparse as the original. */
export async function copyDisk(images: RealbootImages, bootloader: Bootloader, dir: string): Promise<string> {
  const copy = path.join(dir, `disk-${bootloader}.img`);
  await runTool('cp', ['--sparse=always', images.disks[bootloader], copy]);
  return copy;
}

async function build(dir: string, cacheRoot: string, kernelPackage: string): Promise<void> {
  const partial = `${dir}.partial`;
  removeTree(partial);
  await fs.mkdir(partial, { recursive: true });
  const packages = path.join(cacheRoot, 'packages');
  const kernel = await unpackCloudKernel(packages, kernelPackage);
  const prepareRoot = await unpackPrepareRoot(packages);
  await patchUbootRom(UBOOT_QEMU_X86_ROM, path.join(partial, 'u-boot.rom'));
  const initramfs = path.join(partial, 'initramfs.img');
  await buildInitramfs({ kernel, busybox: BUSYBOX, prepareRoot, output: initramfs });
  const factory = await buildVmFactory(path.join(partial, 'factory'), {
    kernelRelease: kernel.release,
    vmlinuz: kernel.vmlinuz,
    initramfs,
    busybox: BUSYBOX,
    ferryRoot: FERRY_ROOT,
  });
  for (const bootloader of BOOTLOADERS) {
    await buildDiskImage({
      bootloader,
      factory: factory.repo,
      target: factory.targets.v1,
      bootScripts: path.join(FERRY_ROOT, 'boot'),
      workDir: path.join(partial, `work-${bootloader}`),
      output: path.join(partial, `disk-${bootloader}.img`),
    });
  }
  const manifest: Manifest = {
    kernelPackage,
    bootHook: await exists(path.join(FERRY_ROOT, 'integration/ferry-boot')),
    targets: factory.targets,
    commits: factory.commits,
  };
  await fs.writeFile(path.join(partial, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
  // The factory was made under the partial directory; its files name no absolute path, so it moves with it.
  removeTree(dir);
  await fs.rename(partial, dir);
}

/** The builder's own code, boot/ and integration/, ferry's bundles and package.json, the kernel, node's version. */
async function inputsKey(kernelPackage: string): Promise<string> {
  const hash = createHash('sha256');
  hash.update(`kernel ${kernelPackage}\nnode ${process.version}\n`);
  const files = [
    ...BUILDER_MODULES.map((name) => fileURLToPath(new URL(`./${name}.js`, import.meta.url))),
    ...(await filesUnder(path.join(FERRY_ROOT, 'boot'))),
    ...(await filesUnder(path.join(FERRY_ROOT, 'integration'))),
    path.join(FERRY_ROOT, 'package.json'),
    path.join(FERRY_ROOT, 'dist/src/cli/ferry.js'),
    path.join(FERRY_ROOT, 'dist/src/cli/aklite-offline.js'),
  ];
  for (const file of files) {
    const stat = await fs.stat(file);
    hash.update(`${path.relative(FERRY_ROOT, file)} ${stat.mode.toString(8)}\n`);
    hash.update(await fs.readFile(file));
  }
  return hash.digest('hex').slice(0, 16);
}

async function filesUnder(dir: string): Promise<string[]> {
  if (!(await exists(dir))) return [];
  const files: string[] = [];
  for (const entry of (await fs.readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) files.push(...(await filesUnder(full)));
    else if (entry.isFile()) files.push(full);
  }
  return files;
}

/** One builder at a time per key: the lock file holds the builder's pid; a dead builder's lock is taken over. */
async function withBuildLock(lock: string, work: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + BUILD_WAIT_MS;
  for (;;) {
    try {
      await fs.writeFile(lock, String(process.pid), { flag: 'wx' });
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number.parseInt(await fs.readFile(lock, 'utf8').catch(() => ''), 10);
      // A lock without a pid yet is one being written right now, unless it has been so for a while.
      const age = await fs.stat(lock).then(
        (stat) => Date.now() - stat.mtimeMs,
        () => 0,
      );
      const dead = Number.isSafeInteger(holder) ? !processAlive(holder) : age > 10_000;
      if (dead) {
        await fs.rm(lock, { force: true });
        continue;
      }
      if (Date.now() > deadline)
        throw new Error(`the real-boot images are still being built by pid ${holder} (${lock})`);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
  try {
    await work();
  } finally {
    await fs.rm(lock, { force: true });
  }
}
