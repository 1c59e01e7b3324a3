import { promises as fs } from 'node:fs';
import path from 'node:path';
import { FerryError, describeCause } from '../../errors.js';
import type { StaticDeltaRootfs } from '../../tuf/bundle-targets.js';
import { fileDigest } from '../../util/file-digest.js';
import type { BundleDir } from './bundle-dir.js';
import { bundleScratchPath } from './bundle-scratch.js';

/**
 * A bundle's rootfs as one OSTree static delta file (export --rootfs static-delta): `rootfs/<commit>.delta`, named
 * with its length and SHA-256 in the signed bundle-targets.json. One large file instead of an object per file of the
 * rootfs: what a FAT stick writes and reads fastest.
 */

/** The directory of a bundle that holds the static delta file. */
export const STATIC_DELTA_DIR = 'rootfs';

/** The bundle-relative name of the static delta file to `commit`. */
export function staticDeltaName(commit: string): string {
  return `${STATIC_DELTA_DIR}/${commit}.delta`;
}

/** Where the signed entry's file is in `bundle`. */
export function staticDeltaPath(bundle: BundleDir, rootfs: StaticDeltaRootfs): string {
  return path.join(bundle.root, ...rootfs.file.split('/'));
}

/** True when the static delta file the signed entry names for `commit` is on the stick. */
export async function staticDeltaPresent(
  bundle: BundleDir,
  rootfs: StaticDeltaRootfs,
  commit: string,
): Promise<boolean> {
  if (rootfs.file !== staticDeltaName(commit)) return false;
  return fs.stat(staticDeltaPath(bundle, rootfs)).then(
    (stat) => stat.isFile(),
    () => false,
  );
}

/**
 * Refuses a static delta file that is absent (8) or does not match its signed length and SHA-256 (66). Only reads:
 * it runs before anything is written. `hash: false` checks the length alone (an export that hashed what it wrote);
 * `copyTo` writes the bytes to that new file as they are hashed (see copyStaticDelta).
 */
export async function checkStaticDelta(
  bundle: BundleDir,
  rootfs: StaticDeltaRootfs,
  target: { readonly name: string; readonly commit: string },
  options: { readonly hash?: boolean; readonly copyTo?: string } = {},
): Promise<void> {
  if (rootfs.file !== staticDeltaName(target.commit))
    throw new FerryError(
      'BUNDLE_METADATA_INVALID',
      `bundle-targets.json names ${rootfs.file} as the rootfs of target "${target.name}", whose commit is ${target.commit}`,
    );
  const file = staticDeltaPath(bundle, rootfs);
  let size: number;
  try {
    const stat = await fs.stat(file);
    if (!stat.isFile()) throw new Error('not a regular file');
    size = stat.size;
  } catch (error) {
    throw new FerryError(
      'CONTENT_MISSING',
      `${rootfs.file} (the rootfs of target "${target.name}"): ${describeCause(error)}`,
      {
        cause: error,
      },
    );
  }
  if (size !== rootfs.length)
    throw new FerryError(
      'STATIC_DELTA_MISMATCH',
      `${rootfs.file} is ${size} bytes; the signed bundle-targets.json says ${rootfs.length}`,
    );
  if (options.hash === false) return;
  const actual = await fileDigest(file, options.copyTo === undefined ? {} : { copyTo: options.copyTo });
  if (actual.length !== rootfs.length || actual.sha256 !== rootfs.sha256)
    throw new FerryError(
      'STATIC_DELTA_MISMATCH',
      `${rootfs.file} hashes to ${actual.sha256}; the signed bundle-targets.json says ${rootfs.sha256}`,
    );
}

/** The static delta file an install applies, and how to remove it once applied. */
export interface StaticDeltaFile {
  /** The signed entry it matched. */
  readonly rootfs: StaticDeltaRootfs;
  readonly path: string;
  discard(): Promise<void>;
}

/** The bundle's delta file where it is: a bundle unpacked from a .tar or decrypted is ferry's own scratch already. */
export function staticDeltaInPlace(bundle: BundleDir, rootfs: StaticDeltaRootfs): StaticDeltaFile {
  return { rootfs, path: staticDeltaPath(bundle, rootfs), discard: async () => undefined };
}

/**
 * Copies the delta file off the stick into new scratch under `scratchParent`, hashing it as it is read, and refuses
 * it as checkStaticDelta does (8, 66) with the copy removed. The stick is read once, and what ostree applies is the
 * copy, the very bytes that matched the signed digest: a stick that served other bytes on a second read could not
 * slip them in. discard() removes the copy; a copy a killed install left is removed by the leftovers cleanup.
 */
export async function copyStaticDelta(
  bundle: BundleDir,
  rootfs: StaticDeltaRootfs,
  target: { readonly name: string; readonly commit: string },
  scratchParent: string,
): Promise<StaticDeltaFile> {
  const scratch = bundleScratchPath(scratchParent);
  const discard = () => fs.rm(scratch, { recursive: true, force: true });
  try {
    await fs.mkdir(scratch, { mode: 0o700 });
    const copy = path.join(scratch, path.basename(rootfs.file));
    await checkStaticDelta(bundle, rootfs, target, { copyTo: copy });
    return { rootfs, path: copy, discard };
  } catch (error) {
    await discard();
    throw error;
  }
}
