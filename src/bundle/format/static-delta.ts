import { promises as fs } from 'node:fs';
import path from 'node:path';
import { FerryError, describeCause } from '../../errors.js';
import type { StaticDeltaRootfs } from '../../tuf/bundle-targets.js';
import { fileDigest } from '../../util/file-digest.js';
import type { BundleDir } from './bundle-dir.js';

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
 * it runs before anything is written. `hash: false` checks the length alone (an export that hashed what it wrote).
 */
export async function checkStaticDelta(
  bundle: BundleDir,
  rootfs: StaticDeltaRootfs,
  target: { readonly name: string; readonly commit: string },
  options: { readonly hash?: boolean } = {},
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
  const actual = await fileDigest(file);
  if (actual.length !== rootfs.length || actual.sha256 !== rootfs.sha256)
    throw new FerryError(
      'STATIC_DELTA_MISMATCH',
      `${rootfs.file} hashes to ${actual.sha256}; the signed bundle-targets.json says ${rootfs.sha256}`,
    );
}
