import path from 'node:path';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { COMPOSE_FILE_LIST, composeFileAmong } from './compose.js';

/** Caps for a compose project archive: it holds text files, never images. */
export const COMPOSE_ARCHIVE_LIMITS = {
  maxArchiveBytes: 16 * 1024 * 1024,
  maxUnpackedBytes: 64 * 1024 * 1024,
  maxMembers: 4096,
} as const;

export interface ProjectFile {
  readonly name: string;
  readonly mode: number;
  readonly content: Buffer;
}

/** A member name that stays inside the project directory, or undefined. */
export function safeMemberName(name: string): string | undefined {
  const normalized = path.posix.normalize(name.replace(/^\.\//, ''));
  if (normalized === '.' || normalized === '') return '.';
  if (path.posix.isAbsolute(normalized) || normalized.split('/').includes('..')) return undefined;
  return normalized.replace(/\/$/, '');
}

/**
 * Reads a verified compose archive (tar+gzip) into memory: its regular files only. Links, devices, paths that leave
 * the project and sizes beyond the caps are refused, so unpacking it can never write outside its directory.
 */
export async function readComposeArchive(archive: Buffer): Promise<{ files: ProjectFile[]; compose: string }> {
  if (archive.length > COMPOSE_ARCHIVE_LIMITS.maxArchiveBytes)
    throw new Error(`archive is larger than ${COMPOSE_ARCHIVE_LIMITS.maxArchiveBytes} bytes`);
  const extract = tar.extract();
  const files: ProjectFile[] = [];
  const seen = new Set<string>();
  let unpacked = 0;
  const done = new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, stream, next) => {
      const fail = (message: string) => {
        stream.resume();
        reject(new Error(message));
        extract.destroy();
      };
      const name = safeMemberName(header.name);
      if (name === undefined) return fail(`member "${header.name}" leaves the project directory`);
      if (seen.has(name)) return fail(`member "${name}" appears twice`);
      seen.add(name);
      if (seen.size > COMPOSE_ARCHIVE_LIMITS.maxMembers)
        return fail(`more than ${COMPOSE_ARCHIVE_LIMITS.maxMembers} members`);
      if (header.type === 'directory') {
        stream.resume();
        stream.on('end', next);
        return undefined;
      }
      if (header.type !== 'file')
        return fail(`member "${name}" is a ${header.type ?? 'special file'}; only files and directories are allowed`);
      const chunks: Buffer[] = [];
      stream.on('data', (data: unknown) => {
        const chunk = data as Buffer;
        unpacked += chunk.length;
        if (unpacked > COMPOSE_ARCHIVE_LIMITS.maxUnpackedBytes)
          fail(`unpacks to more than ${COMPOSE_ARCHIVE_LIMITS.maxUnpackedBytes} bytes`);
        else chunks.push(chunk);
      });
      stream.on('end', () => {
        files.push({ name, mode: (header.mode ?? 0o644) & 0o755, content: Buffer.concat(chunks) });
        next();
      });
      return undefined;
    });
    extract.on('finish', resolve);
    extract.on('error', reject);
  });
  const gunzip = createGunzip();
  gunzip.on('error', (error) => extract.destroy(error));
  Readable.from([archive]).pipe(gunzip).pipe(extract);
  await done;
  const name = composeFileAmong(files.map((file) => file.name));
  const compose = files.find((file) => file.name === name);
  if (compose === undefined) throw new Error(`has no compose file (${COMPOSE_FILE_LIST}) at its top`);
  return { files, compose: compose.content.toString('utf8') };
}
