import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileDigest } from '../../util/file-digest.js';
import { FerryError, describeCause } from '../../errors.js';
import { pathExists, syncDirectory } from '../../util/atomic-file.js';
import { isFileTooLarge, probeMediaFilesystem, type FilesystemProbe } from '../../util/media-filesystem.js';
import { isNoSpace } from '../../util/no-space.js';
import { syncFilesystem } from '../../util/sync-filesystem.js';
import { readBackBundleArchive, type ArchiveContent, type ArchiveKind } from '../format/bundle-archive.js';
import { openBundleDir } from '../format/bundle-dir.js';
import { checkArchiveFitsMedia, packBundle } from './archive-pack.js';
import { membersOfDirectory, type TarMember } from '../../util/tar-pack.js';

/** The parts of a bundle directory that go into its archive; anything else on the stick (reports/…) stays out. */
const BUNDLE_PARTS = ['tuf', 'ostree_repo', 'rootfs', 'apps'] as const;

export interface PackOptions {
  /** Tells the filesystem of the archive's media (tests stand in for a FAT32 stick with it). */
  readonly filesystemProbe?: FilesystemProbe | undefined;
}

export interface PackResult {
  readonly archive: string;
  readonly kind: ArchiveKind;
  readonly files: number;
  readonly bytes: number;
}

/** The kind of archive a file name asks for: `.tar` or `.zip`. */
export function archiveKindOfName(file: string): ArchiveKind | undefined {
  const extension = path.extname(file).toLowerCase();
  return extension === '.tar' ? 'tar' : extension === '.zip' ? 'zip' : undefined;
}

/**
 * `bundle pack`: a finished bundle directory (a signed prod bundle, a stick for many targets) as one file. The tree
 * is checked as install's reader checks an archive (only files and directories; names it accepts), written to
 * `<file>.partial`, read back with the archive reader (every member checked, nothing unpacked) and compared file by
 * file with the directory, flushed, and only then renamed to `<file>`. A failure leaves no file behind.
 */
export async function packBundleDirectory(dir: string, file: string, options: PackOptions = {}): Promise<PackResult> {
  const kind = archiveKindOfName(file);
  if (kind === undefined)
    throw new FerryError('USAGE', `${file}: name the archive <name>.tar or <name>.zip, the kind it is written as`);
  const bundle = await openBundleDir(dir);
  const inside = path.relative(dir, file).split(path.sep)[0];
  if (inside !== undefined && (BUNDLE_PARTS as readonly string[]).includes(inside))
    throw new FerryError('USAGE', `${file} is inside the bundle it would pack; write it elsewhere`);
  const parent = await fs.stat(path.dirname(file)).catch(() => undefined);
  if (parent?.isDirectory() !== true)
    throw new FerryError('USAGE', `${path.dirname(file)} is not a directory to write ${path.basename(file)} into`);
  if (await pathExists(file))
    throw new FerryError('DESTINATION_NOT_EMPTY', `${file} already exists; pack into a new file`);
  const partial = `${file}.partial`;
  if (await pathExists(partial))
    throw new FerryError('DESTINATION_NOT_EMPTY', `${partial} already exists (another pack, or one that was cut)`);

  // Only the bundle's parts: the stick may carry reports/ and other files beside them.
  const members: TarMember[] = [];
  for (const part of BUNDLE_PARTS) {
    const partDir = path.join(bundle.root, part);
    if (!(await pathExists(partDir))) continue;
    members.push({ type: 'directory', name: part });
    for (const member of await membersOfDirectory(partDir)) members.push({ ...member, name: `${part}/${member.name}` });
  }
  const media = await (options.filesystemProbe ?? probeMediaFilesystem)(path.dirname(file));
  await checkArchiveFitsMedia(members, file, media);
  const expected = await bundleContent(bundle.root);
  try {
    await packBundle(members, partial, kind);
    await checkReadBack(partial, kind, expected);
    await flushArchive(partial, !media.hardLinks);
    await fs.rename(partial, file);
    await syncDirectory(path.dirname(file));
  } catch (error) {
    await fs.rm(partial, { force: true });
    throw packFailure(error, media.name, path.dirname(file));
  }
  const bytes = [...expected.values()].reduce((sum, entry) => sum + entry.size, 0);
  return { archive: file, kind, files: expected.size, bytes };
}

/**
 * Every file of the bundle's parts with its size and SHA-256, refusing what install's reader would refuse: links,
 * devices, fifos and sockets. Names are checked again when the archive is read back.
 */
async function bundleContent(root: string): Promise<ArchiveContent> {
  const content: ArchiveContent = new Map();
  async function walk(relative: string): Promise<void> {
    for (const entry of (await fs.readdir(path.join(root, relative), { withFileTypes: true })).sort((a, b) =>
      a.name < b.name ? -1 : 1,
    )) {
      const name = `${relative}/${entry.name}`;
      if (entry.isDirectory()) await walk(name);
      else if (entry.isFile()) {
        const { length, sha256 } = await fileDigest(path.join(root, name));
        content.set(name, { size: length, sha256 });
      } else
        throw new FerryError(
          'BUNDLE_ARCHIVE_INVALID',
          `${name} in ${root} is ${entry.isSymbolicLink() ? 'a symlink' : 'a special file'}: a bundle holds only files and directories, and install refuses anything else`,
        );
    }
  }
  for (const part of BUNDLE_PARTS) if (await pathExists(path.join(root, part))) await walk(part);
  return content;
}

/** Reads the written archive back as install reads it, and compares it with the directory file by file. */
async function checkReadBack(archive: string, kind: ArchiveKind, expected: ArchiveContent): Promise<void> {
  let found: ArchiveContent;
  try {
    found = await readBackBundleArchive(archive, kind);
  } catch (error) {
    throw new FerryError('EXPORT_VERIFY_FAILED', `the written ${kind} failed its read-back: ${describeCause(error)}`, {
      cause: error,
    });
  }
  for (const [name, entry] of expected) {
    const read = found.get(name);
    if (read === undefined || read.size !== entry.size || read.sha256 !== entry.sha256)
      throw new FerryError(
        'EXPORT_VERIFY_FAILED',
        `the written ${kind} ${read === undefined ? 'lacks' : 'holds other bytes for'} ${name}`,
      );
  }
  for (const name of found.keys())
    if (!expected.has(name))
      throw new FerryError('EXPORT_VERIFY_FAILED', `the written ${kind} holds ${name}, which the bundle has not`);
}

/** Makes the archive durable before it gets its name: syncfs, and an fsync, which a FUSE driver needs as well. */
async function flushArchive(file: string, fuseOrFat: boolean): Promise<void> {
  try {
    await syncFilesystem(file);
    // exfat-fuse writes its allocation tables out on an fsync of one of its files, not on syncfs.
    if (fuseOrFat) {
      const handle = await fs.open(file, 'r');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    }
  } catch (error) {
    throw new FerryError(
      'MEDIA_WRITE_FAILED',
      `the archive could not be flushed to the media (${describeCause(error)}); nothing was left behind`,
      { cause: error },
    );
  }
}

function packFailure(error: unknown, filesystem: string, where: string): FerryError {
  if (error instanceof FerryError) return error;
  if (isFileTooLarge(error))
    return new FerryError(
      'MEDIA_FILE_TOO_LARGE',
      `the archive is larger than ${filesystem} at ${where} allows (${describeCause(error)}): use an exFAT (or ext4) stick; nothing was left behind`,
      { cause: error },
    );
  if (isNoSpace(error))
    return new FerryError(
      'MEDIA_WRITE_FAILED',
      `no space left while the archive was written (${describeCause(error)}); nothing was left behind`,
      { cause: error },
    );
  if (['EROFS', 'EACCES', 'EPERM', 'EIO'].includes((error as NodeJS.ErrnoException).code ?? ''))
    return new FerryError(
      'MEDIA_WRITE_FAILED',
      `the archive cannot be written to ${where} (${describeCause(error)}); nothing was left behind`,
      { cause: error },
    );
  return new FerryError('INTERNAL_ERROR', `pack failed: ${describeCause(error)}`, { cause: error });
}
