import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { Transform, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import yauzl from 'yauzl';
import { FerryError, describeCause } from '../../errors.js';
import { ArchiveFileObjectHasher } from '../../ostree/archive-object.js';
import { METADATA_MAX_BYTES } from '../../tuf/verify-metadata.js';
import { createSparseWriteStream, STREAM_READ_CHUNK } from '../../util/sparse-file.js';

/**
 * Single-file bundles: a tar (read as a stream with tar-stream) or a zip (read with yauzl) of the bundle tree.
 * Nothing in a member's header is trusted: every name is checked before a byte is written, and every member that
 * names its own digest is checked on its way to disk: app blobs and OSTree objects (metadata and file objects)
 * against the checksum their name is, metadata against its size cap. The rest (tuf/ metadata, the apps' small
 * files) is verified by TUF and the digest chain before anything uses it.
 */

export const BUNDLE_ARCHIVE_LIMITS = {
  maxMembers: 2_000_000,
  /** A zip member may not inflate more than this many times its compressed size (above 1 MiB). */
  maxCompressionRatio: 200,
} as const;

const TOP_LEVEL = new Set(['tuf', 'ostree_repo', 'rootfs', 'apps']);

function refuse(message: string): FerryError {
  return new FerryError('BUNDLE_ARCHIVE_INVALID', message);
}

export type ArchiveKind = 'tar' | 'zip';

export async function archiveKindOf(file: string): Promise<ArchiveKind | undefined> {
  const handle = await fs.open(file, 'r');
  try {
    const head = Buffer.alloc(512);
    const { bytesRead } = await handle.read(head, 0, 512, 0);
    if (bytesRead >= 4 && head.readUInt32LE(0) === 0x04034b50) return 'zip';
    if (bytesRead >= 4 && head.readUInt32LE(0) === 0x06054b50) return 'zip';
    if (bytesRead >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar') return 'tar';
    return undefined;
  } finally {
    await handle.close();
  }
}

/** The member's path in the archive, normalized (no "." or empty parts), or a refusal naming the member. */
export function memberParts(name: string): string[] {
  if (name.includes('\0')) throw refuse(`member ${JSON.stringify(name)}: a NUL byte in its name`);
  if (name.includes('\\')) throw refuse(`member "${name}": a backslash in its name`);
  if (name.startsWith('/')) throw refuse(`member "${name}": an absolute path`);
  const parts = name.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) throw refuse(`member "${name}": ".." leaves the bundle`);
  return parts;
}

/**
 * Where the bundle's tree starts in the archive: at its top (what ferry writes), or under one folder (what
 * `tar cf b.tar bundle/` writes). Decided by the first member that is part of a bundle; a member of the other kind
 * after that is refused, since the archive would then hold two bundles.
 */
export class BundleRoot {
  private folder: string | undefined;

  /** The member's path inside the bundle, or null for a member that is not part of it (never extracted). */
  place(name: string, parts: readonly string[]): string | null {
    if (parts.length === 0) return null;
    const atTop = TOP_LEVEL.has(parts[0]!);
    const underFolder = parts.length >= 2 && TOP_LEVEL.has(parts[1]!);
    if (this.folder === undefined) {
      if (atTop) this.folder = '';
      else if (underFolder) this.folder = parts[0]!;
      else return null;
    }
    if (this.folder === '') return atTop ? parts.join('/') : null;
    if (atTop)
      throw refuse(`member "${name}": the bundle in this archive sits under "${this.folder}/", this member beside it`);
    return parts[0] === this.folder && underFolder ? parts.slice(1).join('/') : null;
  }

  /** The folder the bundle sits under, for messages ("" at the top), or undefined when no member was part of one. */
  get found(): string | undefined {
    return this.folder;
  }
}

interface MemberInfo {
  readonly name: string;
  readonly type: 'file' | 'directory' | 'symlink' | 'hardlink' | 'other';
  readonly linkname?: string | undefined;
}

/** Links are never extracted: a bundle ferry writes has none, and one that points out of the bundle is an attack. */
function refuseLink(member: MemberInfo, relative: string): never {
  const target = member.linkname ?? '';
  const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(relative), target));
  const outside = target.startsWith('/') || resolved === '..' || resolved.startsWith('../');
  throw refuse(
    `member "${member.name}": a ${member.type} to "${target}"${outside ? ', which points out of the bundle' : ''}; bundles hold only files and directories`,
  );
}

/** What reading an archive back found in it: every file of the bundle, with its size and SHA-256. */
export type ArchiveContent = Map<string, { readonly size: number; readonly sha256: string }>;

/**
 * Writes members into the staging directory, checking what can be checked on the way. Without a directory it only
 * checks, and records what it read: how `bundle pack` reads back what it wrote, without a second copy on the media.
 */
class MemberWriter {
  private readonly seen = new Set<string>();
  private members = 0;
  private readonly bundleRoot = new BundleRoot();
  readonly content: ArchiveContent = new Map();
  /** The first member's name, to say what the archive holds instead of a bundle. */
  firstMember: string | undefined;

  constructor(
    private readonly root: string | undefined,
    /** False for an encrypted bundle's payload: its tuf/ is the one outside, verified before the payload was read. */
    private readonly metadataAllowed = true,
  ) {}

  /** Returns the relative path to write to, or null to skip the member. */
  admit(member: MemberInfo): string | null {
    this.firstMember ??= member.name;
    const relative = this.bundleRoot.place(member.name, memberParts(member.name));
    if (relative === null) return null;
    if (!this.metadataAllowed && relative.startsWith('tuf'))
      throw refuse(`member "${member.name}": the encrypted payload of a bundle carries no metadata`);
    if (++this.members > BUNDLE_ARCHIVE_LIMITS.maxMembers)
      throw refuse(`more than ${BUNDLE_ARCHIVE_LIMITS.maxMembers} members`);
    if (member.type === 'symlink' || member.type === 'hardlink') refuseLink(member, relative);
    if (member.type === 'other') throw refuse(`member "${member.name}": a device, fifo or other special file`);
    if (member.type === 'file') {
      if (this.seen.has(relative)) throw refuse(`member "${member.name}": appears twice`);
      this.seen.add(relative);
    }
    return relative;
  }

  async directory(relative: string): Promise<void> {
    if (this.root !== undefined) await fs.mkdir(path.join(this.root, relative), { recursive: true });
  }

  /** Refuses an archive in which no member is a bundle's tuf/: it holds no bundle. */
  checkHoldsBundle(file: string): void {
    if (![...this.seen].some((relative) => relative.startsWith('tuf/'))) {
      const first = this.firstMember === undefined ? 'it has no member' : `its first member is "${this.firstMember}"`;
      throw refuse(
        `${path.basename(file)} holds no bundle: no member is a file of tuf/, at its top or under one folder (${first})`,
      );
    }
  }

  /** Writes one member; `declaredSize` is the size its header declares (the reader checks it holds that many). */
  async file(relative: string, source: Readable, declaredSize: number): Promise<void> {
    const target = this.root === undefined ? undefined : path.join(this.root, relative);
    if (target !== undefined) await fs.mkdir(path.dirname(target), { recursive: true });
    const expected = expectedDigestOf(relative);
    const fileObject = /^ostree_repo\/objects\/([0-9a-f]{2})\/([0-9a-f]{62})\.filez$/.exec(relative);
    if (declaredSize <= SMALL_MEMBER_BYTES) {
      const bytes = await readMemberCapped(source, SMALL_MEMBER_BYTES, `member "${relative}"`);
      return this.smallFile(relative, target, bytes, expected, fileObject);
    }
    const objectHasher = fileObject ? new ArchiveFileObjectHasher() : undefined;
    const cap = relative.startsWith('tuf/') ? METADATA_MAX_BYTES : undefined;
    // Unpacking hashes only what names its digest; reading back (no directory) hashes every file, to compare.
    const hashed = expected !== undefined || target === undefined;
    const hash = createHash('sha256');
    let size = 0;
    const check = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        size += chunk.length;
        if (cap !== undefined && size > cap) {
          callback(
            new FerryError('METADATA_MALFORMED', `${relative}: more than the ${cap} bytes allowed for metadata`),
          );
          return;
        }
        if (hashed) hash.update(chunk);
        const inflating = objectHasher?.update(chunk);
        if (inflating === undefined) callback(null, chunk);
        else inflating.then(() => callback(null, chunk), callback);
      },
    });
    // Sparse, so that a layer that is mostly zeros does not fill the device's disk on its way to the app store; a
    // read-back writes nothing.
    await pipeline(
      source,
      check,
      target === undefined
        ? new Writable({ write: (_chunk, _encoding, done) => done() })
        : createSparseWriteStream(target, { mode: 0o644 }),
    );
    const actual = hashed ? hash.digest('hex') : '';
    if (target === undefined) this.content.set(relative, { size, sha256: actual });
    checkDigest(relative, expected, actual);
    if (fileObject !== null && objectHasher !== undefined)
      checkObjectChecksum(relative, fileObject, await objectHasher.digest());
  }

  /**
   * A member of at most SMALL_MEMBER_BYTES, with every check of file(), read whole and written in one call: no
   * streams, hash transform, sparse writer or zlib stream of its own for each of the tens of thousands of small
   * files of a rootfs, which came to tens of MiB of garbage at a time.
   */
  private async smallFile(
    relative: string,
    target: string | undefined,
    bytes: Buffer,
    expected: ReturnType<typeof expectedDigestOf>,
    fileObject: RegExpExecArray | null,
  ): Promise<void> {
    if (relative.startsWith('tuf/') && bytes.length > METADATA_MAX_BYTES)
      throw new FerryError(
        'METADATA_MALFORMED',
        `${relative}: more than the ${METADATA_MAX_BYTES} bytes allowed for metadata`,
      );
    if (target !== undefined) await fs.writeFile(target, bytes, { flag: 'wx', mode: 0o644 });
    const hashed = expected !== undefined || target === undefined;
    const actual = hashed ? createHash('sha256').update(bytes).digest('hex') : '';
    if (target === undefined) this.content.set(relative, { size: bytes.length, sha256: actual });
    checkDigest(relative, expected, actual);
    if (fileObject !== null) {
      let checksum = ArchiveFileObjectHasher.digestWhole(bytes, SMALL_OBJECT_CONTENT_BYTES);
      if (checksum === undefined) {
        // Its content is larger than it is worth inflating at once (a member this small that inflates that far
        // is hostile): streamed, as a big object is.
        const hasher = new ArchiveFileObjectHasher();
        await hasher.update(bytes);
        checksum = await hasher.digest();
      }
      checkObjectChecksum(relative, fileObject, checksum);
    }
  }
}

/** Members up to this size are read whole and written in one call (see MemberWriter.smallFile). */
const SMALL_MEMBER_BYTES = 64 * 1024;
/** A small file object whose content declares more than this is inflated as a stream, not at once. */
const SMALL_OBJECT_CONTENT_BYTES = 1024 * 1024;

function checkDigest(relative: string, expected: ReturnType<typeof expectedDigestOf>, actual: string): void {
  if (expected !== undefined && actual !== expected.hex)
    throw new FerryError(
      expected.outcome,
      `${relative}: content hashes to sha256:${actual}, its name says ${expected.hex}`,
    );
}

function checkObjectChecksum(relative: string, fileObject: RegExpExecArray, checksum: string | Error): void {
  const name = fileObject[1]! + fileObject[2]!;
  if (checksum instanceof Error)
    throw new FerryError('CONTENT_VERIFICATION_FAILED', `${relative}: not an OSTree file object: ${checksum.message}`);
  if (checksum !== name)
    throw new FerryError(
      'CONTENT_VERIFICATION_FAILED',
      `${relative}: the object's checksum is ${checksum}, its name says ${name}`,
    );
}

/** Members whose name is their SHA-256: app blobs, and OSTree metadata objects (stored as-is in archive repos). */
function expectedDigestOf(relative: string): { hex: string; outcome: FerryError['outcome'] } | undefined {
  const blob = /^apps\/blobs\/sha256\/([0-9a-f]{64})$/.exec(relative);
  if (blob) return { hex: blob[1]!, outcome: 'BLOB_MISMATCH' };
  const object = /^ostree_repo\/objects\/([0-9a-f]{2})\/([0-9a-f]{62})\.(commit|dirtree|dirmeta)$/.exec(relative);
  if (object) return { hex: object[1]! + object[2]!, outcome: 'CONTENT_VERIFICATION_FAILED' };
  return undefined;
}

function tarType(type: string | null | undefined): MemberInfo['type'] {
  switch (type) {
    case 'file':
    case 'contiguous-file':
      return 'file';
    case 'directory':
      return 'directory';
    case 'symlink':
      return 'symlink';
    case 'link':
      return 'hardlink';
    case 'pax-header':
    case 'pax-global-header':
    case 'gnu-long-path':
    case 'gnu-long-link-path':
      return 'file';
    default:
      return 'other';
  }
}

async function extractTar(file: string, writer: MemberWriter): Promise<void> {
  await extractTarStream(createReadStream(file, { highWaterMark: STREAM_READ_CHUNK }), writer);
}

async function extractTarStream(input: Readable, writer: MemberWriter): Promise<void> {
  const extract = tar.extract();
  // The member being written: when it fails its check, it also breaks the tar stream, and its own refusal is the
  // one to report.
  let current: Promise<void> = Promise.resolve();
  const done = new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, stream, next) => {
      // A broken tar also fails the member being read; whoever reads the member reports it, and a member nobody
      // reads any more (a refused one) must not turn it into an uncaught error.
      stream.on('error', () => undefined);
      const member: MemberInfo = {
        name: header.name,
        type: tarType(header.type),
        linkname: header.linkname ?? undefined,
      };
      let relative: string | null;
      try {
        relative = writer.admit(member);
      } catch (error) {
        stream.resume();
        reject(error);
        extract.destroy();
        return;
      }
      const skip = () =>
        new Promise<void>((ok, fail) => {
          stream.on('end', ok);
          stream.on('error', fail);
          stream.resume();
        });
      const work =
        relative === null
          ? skip()
          : member.type === 'directory'
            ? writer.directory(relative).then(skip)
            : writer.file(relative, stream as unknown as Readable, header.size ?? 0);
      current = work;
      work.then(
        () => next(),
        (error: unknown) => {
          reject(
            error instanceof FerryError ? error : refuse(`the tar is damaged or truncated: ${describeCause(error)}`),
          );
          extract.destroy();
        },
      );
    });
    extract.on('finish', resolve);
    extract.on('error', (error: Error) => {
      const damaged = refuse(`the tar is damaged or truncated: ${describeCause(error)}`);
      current.then(
        () => reject(damaged),
        (failure: unknown) => reject(failure instanceof FerryError ? failure : damaged),
      );
    });
  });
  input.on('error', (error) => extract.destroy(error)).pipe(extract);
  await done;
}

async function extractZip(file: string, writer: MemberWriter): Promise<void> {
  let zip: yauzl.ZipFile;
  try {
    zip = await yauzl.openPromise(file, {
      lazyEntries: true,
      validateEntrySizes: true,
      strictFileNames: true,
      autoClose: true,
    });
  } catch (error) {
    throw refuse(`the zip is damaged or truncated: ${describeCause(error)}`);
  }
  try {
    for await (const entry of zip.eachEntry()) {
      const mode = (entry.externalFileAttributes >>> 16) & 0o170000;
      const type: MemberInfo['type'] =
        entry.fileName.endsWith('/') || mode === 0o040000
          ? 'directory'
          : mode === 0o120000
            ? 'symlink'
            : mode === 0 || mode === 0o100000
              ? 'file'
              : 'other';
      const linkname =
        type === 'symlink'
          ? (
              await readMemberCapped(
                await zip.openReadStreamPromise(entry),
                4096,
                `member "${entry.fileName}": a symlink target`,
              )
            ).toString('utf8')
          : undefined;
      const relative = writer.admit({ name: entry.fileName, type, linkname });
      if (relative === null) continue;
      if (type === 'directory') {
        await writer.directory(relative);
        continue;
      }
      if (
        entry.uncompressedSize > 1024 * 1024 &&
        entry.uncompressedSize > BUNDLE_ARCHIVE_LIMITS.maxCompressionRatio * Math.max(1, entry.compressedSize)
      ) {
        throw refuse(
          `member "${entry.fileName}": inflates ${entry.compressedSize} bytes to ${entry.uncompressedSize}, more than ${BUNDLE_ARCHIVE_LIMITS.maxCompressionRatio} times (a zip bomb)`,
        );
      }
      // validateEntrySizes makes yauzl fail a member whose data is longer or shorter than its header declares.
      await writer.file(relative, await zip.openReadStreamPromise(entry), entry.uncompressedSize);
    }
  } catch (error) {
    zip.close();
    if (error instanceof FerryError) throw error;
    throw refuse(`the zip is damaged, truncated or lies about its sizes: ${describeCause(error)}`);
  }
}

/** A member's whole content, refused (17, with `what` in the line) past `max` bytes. */
export async function readMemberCapped(stream: Readable, max: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > max) throw refuse(`${what}: more than the ${max} bytes allowed`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** How many bytes unpacking the archive may write: the tar's own size, or the sum of the zip's declared sizes. */
export async function unpackedBytesOf(file: string, kind: ArchiveKind): Promise<number> {
  if (kind === 'tar') return (await fs.stat(file)).size;
  const zip = await yauzl.openPromise(file, { lazyEntries: true, autoClose: false });
  let total = 0;
  try {
    for await (const entry of zip.eachEntry()) total += entry.uncompressedSize;
  } finally {
    zip.close();
  }
  return total;
}

/** Unpacks a single-file bundle into `stagingDir` (which must not exist), refusing anything hostile. */
export async function extractBundleArchive(file: string, kind: ArchiveKind, stagingDir: string): Promise<void> {
  await fs.mkdir(stagingDir, { recursive: false, mode: 0o700 });
  await readArchive(file, kind, new MemberWriter(stagingDir));
}

/**
 * Unpacks the decrypted payload of an encrypted bundle (a tar of its ostree_repo/ and apps/) into the directory that
 * holds its verified tuf/ already, with every check of extractBundleArchive. A payload that carries tuf/ is refused.
 */
export async function extractPayloadTar(input: Readable, stagingDir: string): Promise<void> {
  await extractTarStream(input, new MemberWriter(stagingDir, false));
}

/**
 * Reads a single-file bundle with every check of extractBundleArchive, writing nothing: what it holds, file by
 * file, with each one's size and SHA-256.
 */
export async function readBackBundleArchive(file: string, kind: ArchiveKind): Promise<ArchiveContent> {
  const writer = new MemberWriter(undefined);
  await readArchive(file, kind, writer);
  return writer.content;
}

async function readArchive(file: string, kind: ArchiveKind, writer: MemberWriter): Promise<void> {
  if (kind === 'tar') await extractTar(file, writer);
  else await extractZip(file, writer);
  writer.checkHoldsBundle(file);
}
