import { promises as fs } from 'node:fs';
import path from 'node:path';
import { FerryError } from '../errors.js';
import { formatBytes } from './format-bytes.js';

/** What ferry must know of the filesystem a bundle is written to: what it is called, and what it cannot do. */
export interface MediaFilesystem {
  /** For messages: "ext4", "FAT32 (vfat)", "exFAT (FUSE)"… */
  readonly name: string;
  /**
   * Hard links and rename flags (RENAME_NOREPLACE) work: ostree may write its objects there itself. FAT32, exFAT and
   * FUSE filesystems get only create, write, fsync and plain rename.
   */
  readonly hardLinks: boolean;
  /** The largest file the filesystem can hold, when that is less than any bundle could need (FAT32: 4 GiB - 1 B). */
  readonly maxFileBytes?: number | undefined;
}

/** Tells the filesystem that holds `dir` (or would hold it: the nearest existing parent is asked). */
export type FilesystemProbe = (dir: string) => Promise<MediaFilesystem>;

export const FAT32_MAX_FILE_BYTES = 4 * 1024 ** 3 - 1;

// statfs(2) f_type values, from linux/magic.h.
const MSDOS_SUPER_MAGIC = 0x4d44;
const EXFAT_SUPER_MAGIC = 0x2011bab0;
const FUSE_SUPER_MAGIC = 0x65735546;
const KNOWN: Readonly<Record<number, string>> = {
  0xef53: 'ext4',
  0x01021994: 'tmpfs',
  0x58465342: 'xfs',
  0x9123683e: 'btrfs',
  0x794c7630: 'overlayfs',
  0x5346544e: 'NTFS',
  0x7366746e: 'NTFS',
  0x2fc12fc1: 'zfs',
  0xf2f52010: 'f2fs',
};

const FAT32: MediaFilesystem = { name: 'FAT32 (vfat)', hardLinks: false, maxFileBytes: FAT32_MAX_FILE_BYTES };
const EXFAT: MediaFilesystem = { name: 'exFAT', hardLinks: false };

/** The filesystem of `dir`: statfs(2), and for a FUSE mount its type in mountinfo and its device's boot sector. */
export const probeMediaFilesystem: FilesystemProbe = async (dir) => {
  const existing = await nearestExisting(dir);
  const { type } = await fs.statfs(existing);
  if (type === MSDOS_SUPER_MAGIC) return FAT32;
  if (type === EXFAT_SUPER_MAGIC) return EXFAT;
  if (type === FUSE_SUPER_MAGIC) return fuseFilesystem(existing);
  return { name: KNOWN[type] ?? `a filesystem of type 0x${type.toString(16)}`, hardLinks: true };
};

async function nearestExisting(dir: string): Promise<string> {
  let current = path.resolve(dir);
  for (;;) {
    try {
      await fs.stat(current);
      return current;
    } catch {
      const parent = path.dirname(current);
      if (parent === current) return current;
      current = parent;
    }
  }
}

/**
 * A FUSE mount (exfat-fuse, fusefat, ntfs-3g…) promises no more than create, write and plain rename. Its name comes
 * from the mount's type and, for a block device that can be read, the boot sector's own label of its filesystem.
 */
async function fuseFilesystem(dir: string): Promise<MediaFilesystem> {
  const mount = await mountOf(await fs.realpath(dir));
  const sector = mount?.source.startsWith('/dev/') ? await bootSector(mount.source) : undefined;
  if (sector !== undefined) {
    if (sector.subarray(3, 11).toString('latin1') === 'EXFAT   ') return { ...EXFAT, name: 'exFAT (FUSE)' };
    if (sector.subarray(82, 90).toString('latin1') === 'FAT32   ') return { ...FAT32, name: 'FAT32 (FUSE)' };
    if (/^FAT1[26] {3}$/.test(sector.subarray(54, 62).toString('latin1')))
      return { ...FAT32, name: 'FAT (FUSE)', maxFileBytes: FAT32_MAX_FILE_BYTES };
    if (sector.subarray(3, 11).toString('latin1') === 'NTFS    ') return { name: 'NTFS (FUSE)', hardLinks: false };
  }
  return { name: mount === undefined ? 'a FUSE filesystem' : `${mount.type} (FUSE)`, hardLinks: false };
}

/** The mount that holds `dir`: the longest mount point of /proc/self/mountinfo above it. */
async function mountOf(dir: string): Promise<{ type: string; source: string } | undefined> {
  let text: string;
  try {
    text = await fs.readFile('/proc/self/mountinfo', 'utf8');
  } catch {
    return undefined;
  }
  let best: { point: string; type: string; source: string } | undefined;
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ');
    if (left === undefined || right === undefined) continue;
    const point = unescapeMountField(left.split(' ')[4] ?? '');
    const [type = '', source = ''] = right.split(' ');
    const inside = point === '/' || dir === point || dir.startsWith(`${point}/`);
    if (inside && (best === undefined || point.length >= best.point.length))
      best = { point, type, source: unescapeMountField(source) };
  }
  return best;
}

function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_match, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}

async function bootSector(device: string): Promise<Buffer | undefined> {
  try {
    const handle = await fs.open(device, 'r');
    try {
      const sector = Buffer.alloc(512);
      const { bytesRead } = await handle.read(sector, 0, 512, 0);
      return bytesRead === 512 ? sector : undefined;
    } finally {
      await handle.close();
    }
  } catch {
    return undefined;
  }
}

/** A file that would be written to the media: its path there (for the message) and its size. */
export interface MediaFile {
  readonly name: string;
  readonly bytes: number;
}

/**
 * Refuses, before it is written, a file the filesystem cannot hold (FAT32: 4 GiB - 1 B). The message names the file,
 * the filesystem and what the operator can do instead.
 */
export function checkFitsMedia(
  media: MediaFilesystem,
  where: string,
  files: Iterable<MediaFile>,
  instead = 'use an exFAT (or ext4) stick',
): void {
  const max = media.maxFileBytes;
  if (max === undefined) return;
  for (const file of files) {
    if (file.bytes > max)
      throw new FerryError(
        'MEDIA_FILE_TOO_LARGE',
        `${file.name} would be ${file.bytes} B (${formatBytes(file.bytes)}), more than the ${max} B a file can have on ${media.name} (${where}): ${instead}; nothing was written`,
        { detail: { file: file.name, bytes: file.bytes, maxFileBytes: max, filesystem: media.name } },
      );
  }
}

/** Whether `error` (or its cause) is the kernel refusing a file past the filesystem's size limit. */
export function isFileTooLarge(error: unknown): boolean {
  for (let cause = error, depth = 0; cause !== undefined && depth < 8; depth++) {
    if ((cause as NodeJS.ErrnoException).code === 'EFBIG') return true;
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return false;
}
