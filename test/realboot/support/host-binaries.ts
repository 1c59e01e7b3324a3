import { promises as fs } from 'node:fs';
import path from 'node:path';
import { runTool } from '../../../src/util/tool.js';

/**
 * The guest runs the host's own Debian 12 x86_64 binaries: same architecture, same libc. Each one is copied with its
 * `ldd` closure, so the image needs no package manager and no second distribution.
 */

/** The absolute paths of the shared libraries `binary` loads, the dynamic loader included. */
export async function sharedLibrariesOf(binary: string): Promise<string[]> {
  let out: string;
  try {
    out = await runTool('ldd', [binary]);
  } catch (error) {
    // A static binary: ldd says so and exits non-zero.
    if (/not a dynamic executable/.test(String((error as Error).message))) return [];
    throw error;
  }
  const libraries: string[] = [];
  for (const line of out.split('\n')) {
    const match = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (match) libraries.push(match[1]!);
  }
  return libraries;
}

/**
 * Copies `binary` to `root/destination` and each library it loads to the same path under `root` (under `root/usr`
 * when `mergedUsr`: the rootfs links /lib and /lib64 into /usr, as OSTree wants everything read-only under /usr).
 */
export async function copyHostBinary(
  binary: string,
  root: string,
  destination: string,
  options: { readonly mergedUsr: boolean },
): Promise<void> {
  await copyFile(binary, path.join(root, destination));
  for (const library of await sharedLibrariesOf(binary)) {
    const target = options.mergedUsr && /^\/lib(64)?\//.test(library) ? `/usr${library}` : library;
    if (!(await present(path.join(root, target)))) await copyFile(library, path.join(root, target));
  }
}

async function copyFile(source: string, destination: string): Promise<void> {
  await fs.mkdir(path.dirname(destination), { recursive: true });
  // Never through a symlink already there (a busybox applet of the same name).
  await fs.rm(destination, { force: true });
  // Dereferenced: the libraries are symlinks to versioned files.
  await fs.copyFile(await fs.realpath(source), destination);
  await fs.chmod(destination, (await fs.stat(source)).mode & 0o7777);
}

async function present(file: string): Promise<boolean> {
  return fs.lstat(file).then(
    () => true,
    () => false,
  );
}

/** A busybox tree: the static binary at `bin/busybox` of `dir` and a symlink per applet it offers. */
export async function installBusybox(busybox: string, binDir: string): Promise<void> {
  await fs.mkdir(binDir, { recursive: true });
  await copyFile(busybox, path.join(binDir, 'busybox'));
  const applets = (await runTool(busybox, ['--list'])).split('\n').filter((name) => name !== '');
  for (const applet of applets) {
    if (applet === 'busybox' || (await present(path.join(binDir, applet)))) continue;
    await fs.symlink('busybox', path.join(binDir, applet));
  }
}
