import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { availableBytes } from '../device/free-space.js';
import { FerryError, describeCause } from '../errors.js';
import { archiveKindOf, extractBundleArchive, unpackedBytesOf } from './bundle-archive.js';
import { openBundleDir, type BundleDir } from './bundle-dir.js';

export interface BundleSource {
  readonly bundle: BundleDir;
  /** What the operator gave: a directory, a .tar or a .zip. */
  readonly kind: 'directory' | 'tar' | 'zip';
  /** Removes whatever opening the bundle unpacked. */
  close(): Promise<void>;
}

const UNPACK_MARGIN_BYTES = 1024 * 1024;

/**
 * Opens `--src-dir`: a bundle directory is used where it is (a read-only stick is fine); a single-file bundle is
 * unpacked, with every member checked, into a directory beside the device's storage, never into a small /tmp. The
 * unpacked copy is removed by close(), whatever happened.
 */
export async function openBundleSource(source: string, stagingParent: string): Promise<BundleSource> {
  let stat;
  try {
    stat = await fs.stat(source);
  } catch (error) {
    throw new FerryError('BUNDLE_UNREADABLE', `cannot open the bundle ${source}: ${describeCause(error)}`, {
      cause: error,
    });
  }
  if (stat.isDirectory())
    return { bundle: await openBundleDir(source), kind: 'directory', close: async () => undefined };
  const kind = stat.isFile() ? await archiveKindOf(source) : undefined;
  if (kind === undefined)
    throw new FerryError('BUNDLE_UNREADABLE', `${source} is neither a bundle directory nor a tar or zip bundle`);

  await fs.mkdir(stagingParent, { recursive: true });
  const needed = (await unpackedBytesOf(source, kind).catch(() => stat.size)) + UNPACK_MARGIN_BYTES;
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
  const staging = path.join(stagingParent, `.bundle-${process.pid}-${randomBytes(4).toString('hex')}`);
  const close = () => fs.rm(staging, { recursive: true, force: true });
  try {
    await extractBundleArchive(source, kind, staging);
    return { bundle: await openBundleDir(staging), kind, close };
  } catch (error) {
    await close();
    throw error;
  }
}
