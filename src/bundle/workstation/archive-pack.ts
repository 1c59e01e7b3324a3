import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import yazl from 'yazl';
import { writeTar, type TarMember } from '../../util/tar-pack.js';
import { checkFitsMedia, type MediaFile, type MediaFilesystem } from '../../util/media-filesystem.js';

/**
 * A bundle tree as one file, a tar or a zip: what `export --archive` and `bundle pack` write. Both kinds get the
 * same members in the same order, with fixed times and owners, so the same tree packs to the same bytes.
 */

/**
 * Refuses, before the archive is written, one that the media's filesystem cannot hold: the archive is at least as big
 * as its members' content (a tar adds a 512-byte header to each and pads it to 512 bytes).
 */
export async function checkArchiveFitsMedia(
  members: readonly TarMember[],
  archive: string,
  media: MediaFilesystem,
): Promise<void> {
  if (media.maxFileBytes === undefined) return;
  let bytes = 1024;
  let largest: MediaFile = { name: '', bytes: 0 };
  for (const member of members) {
    bytes += 512;
    if (member.type !== 'file-from') continue;
    const size = (await fs.stat(member.source)).size;
    bytes += Math.ceil(size / 512) * 512;
    if (size > largest.bytes) largest = { name: member.name, bytes: size };
  }
  checkFitsMedia(
    media,
    path.dirname(archive),
    [{ name: archive, bytes }],
    largest.bytes > media.maxFileBytes
      ? `use an exFAT (or ext4) stick: its largest member, ${largest.name}, is over the limit itself`
      : 'use an exFAT (or ext4) stick, or write the bundle as a directory, whose largest file fits',
  );
}

/** Packs a bundle tree into one new file: members in a fixed order, with fixed times and owners. */
export async function packBundle(members: readonly TarMember[], file: string, kind: 'tar' | 'zip'): Promise<void> {
  if (kind === 'tar') {
    await writeTar(file, members, { gzip: false });
    return;
  }
  const zip = new yazl.ZipFile();
  const fixed = new Date(Date.UTC(1980, 0, 1));
  for (const member of members) {
    if (member.type === 'directory') zip.addEmptyDirectory(member.name, { mtime: fixed });
    else if (member.type === 'file-from')
      zip.addFile(member.source, member.name, {
        mtime: fixed,
        mode: 0o100644,
        compress: member.name.endsWith('.json'),
      });
  }
  zip.end();
  await pipeline(zip.outputStream, createWriteStream(file, { flags: 'wx' }));
}
