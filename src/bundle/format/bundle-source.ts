import { promises as fs } from 'node:fs';
import path from 'node:path';
import { availableBytes } from '../../util/free-space.js';
import { removeTree } from '../../util/remove-tree.js';
import { FerryError, describeCause } from '../../errors.js';
import { archiveKindOf, extractBundleArchive, unpackedBytesOf } from './bundle-archive.js';
import { openBundleDir, type BundleDir } from './bundle-dir.js';
import { bundleScratchPath } from './bundle-scratch.js';
import { isEncryptedBundleFile, openSealedBundle, type SealedBundle } from './encrypted-bundle.js';

export interface BundleSource {
  readonly bundle: BundleDir;
  /** What the operator gave: a directory, a .tar or a .zip, or an encrypted bundle (a tar of its own form). */
  readonly kind: 'directory' | 'tar' | 'zip' | 'encrypted';
  /**
   * Set for an encrypted bundle: only its tuf/ is in `bundle` until unseal() decrypted the rest, which the caller does
   * once the metadata that names the payload's digest verified.
   */
  readonly sealed?: SealedBundle | undefined;
  /** Removes whatever opening the bundle unpacked. */
  close(): Promise<void>;
}

const UNPACK_MARGIN_BYTES = 1024 * 1024;

/** What `--src-dir` names, once it is known to be a bundle: decided before anything is written anywhere. */
export interface BundleLocation {
  readonly path: string;
  readonly kind: BundleSource['kind'];
  /** The media that holds it: the bundle directory itself, or the directory that holds the .tar or .zip. */
  readonly media: string;
}

/** The parts of a bundle directory: a path that ends in one of them is a mistyped path to the bundle. */
const BUNDLE_PARTS = new Set(['tuf', 'ostree_repo', 'rootfs', 'apps']);

async function isDirectory(dir: string): Promise<boolean> {
  return fs.stat(dir).then(
    (stat) => stat.isDirectory(),
    () => false,
  );
}

/**
 * Decides that `source` is a bundle: a directory with a tuf/ directory, or a regular file that is a tar or a zip.
 * Only the path's type and a regular file's first bytes are read (a FIFO or a device is never opened), so a
 * mistyped --src-dir (a file of the system, a part of a bundle) is refused before it can be mistaken for media.
 */
export async function locateBundle(source: string): Promise<BundleLocation> {
  let stat;
  try {
    stat = await fs.stat(source);
  } catch (error) {
    throw new FerryError('BUNDLE_UNREADABLE', `cannot open the bundle ${source}: ${describeCause(error)}`, {
      cause: error,
    });
  }
  if (stat.isDirectory()) {
    if (await isDirectory(path.join(source, 'tuf'))) return { path: source, kind: 'directory', media: source };
    const parent = path.dirname(source);
    const hint =
      BUNDLE_PARTS.has(path.basename(source)) && (await isDirectory(path.join(parent, 'tuf')))
        ? ` (it is the ${path.basename(source)}/ of the bundle ${parent})`
        : '';
    throw new FerryError('BUNDLE_UNREADABLE', `${source} is not a bundle: it has no tuf/ directory${hint}`);
  }
  const kind = stat.isFile() ? await archiveKindOf(source).catch(() => undefined) : undefined;
  if (kind === undefined)
    throw new FerryError('BUNDLE_UNREADABLE', `${source} is neither a bundle directory nor a tar or zip bundle`);
  const encrypted = kind === 'tar' && (await isEncryptedBundleFile(source));
  return { path: source, kind: encrypted ? 'encrypted' : kind, media: path.dirname(source) };
}

/**
 * Opens `--src-dir`: a bundle directory is used where it is (a read-only stick is fine); a single-file bundle is
 * unpacked, with every member checked, into a directory beside the device's storage, never into a small /tmp. The
 * unpacked copy is removed by close(), whatever happened.
 */
export async function openBundleSource(source: string, stagingParent: string): Promise<BundleSource> {
  const { kind } = await locateBundle(source);
  if (kind === 'directory')
    return { bundle: await openBundleDir(source), kind: 'directory', close: async () => undefined };

  await fs.mkdir(stagingParent, { recursive: true });
  const size = (await fs.stat(source)).size;
  // An encrypted bundle's payload decrypts to a tar of its own length: the file's size bounds what it unpacks to.
  const needed =
    (kind === 'encrypted' ? size : await unpackedBytesOf(source, kind).catch(() => size)) + UNPACK_MARGIN_BYTES;
  const free = await availableBytes(stagingParent);
  if (needed > free.bytes) {
    throw new FerryError(
      'NO_SPACE',
      `space required ${needed} B, available ${free.bytes} B (to unpack ${path.basename(source)} on the filesystem of ${stagingParent})`,
      {
        detail: { required: needed, available: free.bytes, where: stagingParent },
      },
    );
  }
  const staging = bundleScratchPath(stagingParent);
  // One directory at a time: the unpacked objects of a big bundle are tens of thousands of files.
  const close = () => removeTree(staging);
  try {
    if (kind === 'encrypted') {
      await fs.mkdir(staging, { recursive: false, mode: 0o700 });
      const sealed = await openSealedBundle(source, staging);
      return { bundle: await openBundleDir(staging), kind, sealed, close };
    }
    await extractBundleArchive(source, kind, staging);
    return { bundle: await openBundleDir(staging), kind, close };
  } catch (error) {
    await close();
    throw error;
  }
}
