import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import { BIG_READ_CHUNK, createSparseWriteStream } from './sparse-file.js';

/** One member of a tar that ferry writes. Times and owners are fixed, so the same content gives the same bytes. */
export type TarMember =
  | { readonly type: 'directory'; readonly name: string; readonly mode?: number }
  | { readonly type: 'file'; readonly name: string; readonly mode?: number; readonly content: Buffer | string }
  | { readonly type: 'file-from'; readonly name: string; readonly mode?: number; readonly source: string }
  | { readonly type: 'symlink'; readonly name: string; readonly target: string }
  /** A file whose content is made while it is written (an encrypted payload); `open` must give exactly `size` bytes. */
  | {
      readonly type: 'stream';
      readonly name: string;
      readonly mode?: number;
      readonly size: number;
      readonly open: () => Readable;
    };

const FIXED_TIME = new Date(0);

/**
 * Writes `members` (in the given order) as a tar, gzipped when `gzip` is set, into the new file `file`. Members are
 * streamed from their files, so their size is not bounded by memory; tar-stream writes a size beyond the 8 GiB of
 * the octal header field in base-256, as GNU tar does. The tar is written sparse: a member's holes stay holes.
 */
export async function writeTar(file: string, members: readonly TarMember[], options: { gzip: boolean }): Promise<void> {
  const pack = packTar(members);
  const sink = createSparseWriteStream(file);
  await (options.gzip ? pipeline(pack, createGzip({ level: 6 }), sink) : pipeline(pack, sink));
}

/**
 * The tar of `members` as a stream, fed while it is read. A member that fails (a file that cannot be read) fails the
 * stream, so whoever consumes it sees the error; the consumer's own failure (a full disk) stops the feeding.
 */
export function packTar(members: readonly TarMember[]): Readable {
  const pack = tar.pack();
  feedMembers(pack, members).catch((error: unknown) => {
    pack.destroy(error as Error);
  });
  return pack as unknown as Readable;
}

async function feedMembers(pack: tar.Pack, members: readonly TarMember[]): Promise<void> {
  for (const member of members) {
    const base = { name: member.name, mtime: FIXED_TIME, uid: 0, gid: 0, uname: 'root', gname: 'root' };
    switch (member.type) {
      case 'directory':
        pack.entry({ ...base, type: 'directory', mode: member.mode ?? 0o755 });
        break;
      case 'symlink':
        pack.entry({ ...base, type: 'symlink', linkname: member.target, mode: 0o777 });
        break;
      case 'file':
        pack.entry({ ...base, type: 'file', mode: member.mode ?? 0o644 }, Buffer.from(member.content));
        break;
      case 'file-from': {
        const { size } = await fs.stat(member.source);
        const entry = pack.entry({ ...base, type: 'file', mode: member.mode ?? 0o644, size });
        await pipeline(createReadStream(member.source, { highWaterMark: BIG_READ_CHUNK }), entry);
        break;
      }
      case 'stream': {
        const entry = pack.entry({ ...base, type: 'file', mode: member.mode ?? 0o644, size: member.size });
        await pipeline(member.open(), entry);
        break;
      }
    }
  }
  pack.finalize();
}

/** The members of a directory tree, sorted, with paths relative to `root`. Only files, directories and symlinks. */
export async function membersOfDirectory(root: string): Promise<TarMember[]> {
  const members: TarMember[] = [];
  async function walk(relative: string): Promise<void> {
    const names = (await fs.readdir(path.join(root, relative))).sort();
    for (const name of names) {
      const rel = relative === '' ? name : `${relative}/${name}`;
      const full = path.join(root, rel);
      const stat = await fs.lstat(full);
      if (stat.isDirectory()) {
        members.push({ type: 'directory', name: rel, mode: stat.mode & 0o777 });
        await walk(rel);
      } else if (stat.isSymbolicLink()) {
        members.push({ type: 'symlink', name: rel, target: await fs.readlink(full) });
      } else if (stat.isFile()) {
        members.push({ type: 'file-from', name: rel, mode: stat.mode & 0o777, source: full });
      }
    }
  }
  await walk('');
  return members;
}
