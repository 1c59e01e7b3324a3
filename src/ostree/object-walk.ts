import { createHash } from 'node:crypto';
import { createReadStream, type Dirent, promises as fs } from 'node:fs';
import path from 'node:path';
import { ArchiveFileObjectHasher } from './archive-object.js';

/**
 * Walks the objects an OSTree commit reaches by reading the repos' own files: the commit, then each dirtree, its
 * dirmeta and its file objects. It answers "which object is absent" from what is on disk, so that a bundle lacking
 * an object is told apart from one whose objects are damaged without reading ostree's error text.
 *
 * The metadata objects are GVariants (ostree's `OSTREE_COMMIT_GVARIANT_FORMAT` and `OSTREE_TREE_GVARIANT_FORMAT`):
 *   commit  (a{sv}aya(say)sstayay)  metadata, parent, related, subject, body, timestamp, root dirtree, root dirmeta
 *   dirtree (a(say)a(sayay))         files (name, checksum), dirs (name, dirtree checksum, dirmeta checksum)
 * Each is checked against its checksum (sha256 of its bytes) before it is read: a damaged object is not followed.
 */

export type ObjectKind = 'commit' | 'dirtree' | 'dirmeta' | 'file';

export interface ReachedObject {
  readonly checksum: string;
  readonly kind: ObjectKind;
  /** The path in the commit's tree the object belongs to ("/" for the commit and the root). */
  readonly where: string;
}

/** Why a walk could not go on: an object is absent from every repo, or one present is damaged. */
export type WalkStop =
  | { readonly reason: 'missing'; readonly object: ReachedObject }
  | { readonly reason: 'damaged'; readonly object: ReachedObject; readonly detail: string };

const EXTENSIONS: Record<ObjectKind, readonly string[]> = {
  commit: ['commit'],
  dirtree: ['dirtree'],
  dirmeta: ['dirmeta'],
  // archive repos (a bundle's) compress file objects; bare repos (a device's) keep them as they are.
  file: ['filez', 'file'],
};

/** The repo-relative path of an object, as ostree names it, with the first extension of its kind. */
export function objectPath(checksum: string, kind: ObjectKind): string {
  return path.join('objects', checksum.slice(0, 2), `${checksum.slice(2)}.${EXTENSIONS[kind][0]}`);
}

/**
 * The objects one repo holds, found by listing its 256 prefix directories (all at once, side by side, when the walk
 * starts) instead of an lstat per object and extension: a commit of 50,000 files is 150,000 lstats, each a round trip
 * through the thread pool, seconds on a device's disk; its listings take a fraction of a second.
 */
class RepoObjects {
  private readonly objectsDir: string;
  private readonly listings = new Map<string, ReadonlySet<string>>();
  readonly listed: Promise<void>;

  constructor(repo: string) {
    this.objectsDir = path.join(repo, 'objects');
    this.listed = Promise.all(
      PREFIXES.map(async (prefix) => this.listings.set(prefix, await listObjects(path.join(this.objectsDir, prefix)))),
    ).then(() => undefined);
  }

  /** The object's path when this repo holds it; only once `listed` resolved. */
  find(prefix: string, name: string): string | undefined {
    return this.listings.get(prefix)?.has(name) === true ? `${this.objectsDir}/${prefix}/${name}` : undefined;
  }
}

const PREFIXES = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'));

/** The regular files and symlinks of `dir` (a directory that cannot be read holds nothing, as an lstat would say). */
async function listObjects(dir: string): Promise<ReadonlySet<string>> {
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
  const names = new Set<string>();
  for (const entry of entries) {
    if (entry.isFile() || entry.isSymbolicLink()) names.add(entry.name);
    else if (typeOfEntryUnknown(entry)) {
      // A filesystem that does not report types in its directory entries: asked one by one.
      const stat = await fs.lstat(path.join(dir, entry.name)).catch(() => undefined);
      if (stat !== undefined && (stat.isFile() || stat.isSymbolicLink())) names.add(entry.name);
    }
  }
  return names;
}

function typeOfEntryUnknown(entry: Dirent): boolean {
  return !(
    entry.isFile() ||
    entry.isDirectory() ||
    entry.isSymbolicLink() ||
    entry.isFIFO() ||
    entry.isSocket() ||
    entry.isBlockDevice() ||
    entry.isCharacterDevice()
  );
}

function locate(repos: readonly RepoObjects[], checksum: string, kind: ObjectKind): string | undefined {
  const prefix = checksum.slice(0, 2);
  const rest = checksum.slice(2);
  for (const repo of repos) {
    for (const extension of EXTENSIONS[kind]) {
      const file = repo.find(prefix, `${rest}.${extension}`);
      if (file !== undefined) return file;
    }
  }
  return undefined;
}

class Malformed extends Error {}

function offsetSize(length: number): number {
  if (length <= 0xff) return 1;
  if (length <= 0xffff) return 2;
  return 4;
}

function readOffset(buffer: Buffer, at: number, size: number): number {
  if (at < 0 || at + size > buffer.length) throw new Malformed('a framing offset outside the value');
  return size === 1 ? buffer.readUInt8(at) : size === 2 ? buffer.readUInt16LE(at) : buffer.readUInt32LE(at);
}

/**
 * Splits a tuple whose members are all variable-sized and byte-aligned except where `align8` says otherwise: the
 * end of every member but the last is in the framing offsets at the tuple's end, the first member's last.
 */
function tupleMembers(value: Buffer, members: ReadonlyArray<{ fixed?: number; align8?: boolean }>): Buffer[] {
  const size = offsetSize(value.length);
  const framed = members.slice(0, -1).filter((member) => member.fixed === undefined).length;
  const dataEnd = value.length - framed * size;
  if (dataEnd < 0) throw new Malformed('shorter than its framing offsets');
  const out: Buffer[] = [];
  let start = 0;
  let frame = 0;
  members.forEach((member, index) => {
    if (member.align8) start = Math.ceil(start / 8) * 8;
    let end: number;
    if (member.fixed !== undefined) end = start + member.fixed;
    else if (index === members.length - 1) end = dataEnd;
    else end = readOffset(value, value.length - ++frame * size, size);
    if (end < start || end > dataEnd) throw new Malformed('a member outside the value');
    out.push(value.subarray(start, end));
    start = end;
  });
  return out;
}

/** The elements of an array of variable-sized, byte-aligned elements. */
function arrayElements(value: Buffer): Buffer[] {
  if (value.length === 0) return [];
  const size = offsetSize(value.length);
  const framesStart = readOffset(value, value.length - size, size);
  if (framesStart > value.length || (value.length - framesStart) % size !== 0)
    throw new Malformed('an array with bad framing');
  const out: Buffer[] = [];
  let start = 0;
  for (let at = framesStart; at < value.length; at += size) {
    const end = readOffset(value, at, size);
    if (end < start || end > framesStart) throw new Malformed('an array element outside the array');
    out.push(value.subarray(start, end));
    start = end;
  }
  return out;
}

function stringOf(value: Buffer): string {
  if (value.length === 0 || value[value.length - 1] !== 0) throw new Malformed('a string without its NUL');
  const text = value.subarray(0, -1).toString('utf8');
  if (text === '' || text.includes('/') || text.includes('\0') || text === '.' || text === '..')
    throw new Malformed(`a bad file name ${JSON.stringify(text)}`);
  return text;
}

function checksumOf(value: Buffer): string {
  if (value.length !== 32) throw new Malformed(`a checksum of ${value.length} bytes`);
  return value.toString('hex');
}

/** The root dirtree and dirmeta a commit names. */
export function parseCommit(value: Buffer): { tree: string; meta: string } {
  const members = tupleMembers(value, [{ align8: true }, {}, {}, {}, {}, { fixed: 8, align8: true }, {}, {}]);
  return { tree: checksumOf(members[6]!), meta: checksumOf(members[7]!) };
}

export interface DirTree {
  readonly files: ReadonlyArray<{ readonly name: string; readonly checksum: string }>;
  readonly dirs: ReadonlyArray<{ readonly name: string; readonly tree: string; readonly meta: string }>;
}

export function parseDirTree(value: Buffer): DirTree {
  const [files, dirs] = tupleMembers(value, [{}, {}]);
  return {
    files: arrayElements(files!).map((element) => {
      const [name, checksum] = tupleMembers(element, [{}, {}]);
      return { name: stringOf(name!), checksum: checksumOf(checksum!) };
    }),
    dirs: arrayElements(dirs!).map((element) => {
      const [name, tree, meta] = tupleMembers(element, [{}, {}, {}]);
      return { name: stringOf(name!), tree: checksumOf(tree!), meta: checksumOf(meta!) };
    }),
  };
}

/** Reads a metadata object and checks it against its checksum; a damaged one stops the walk. */
async function readMetadata(file: string, object: ReachedObject): Promise<Buffer | WalkStop> {
  const bytes = await fs.readFile(file);
  const actual = createHash('sha256').update(bytes).digest('hex');
  if (actual !== object.checksum) return { reason: 'damaged', object, detail: `hashes to ${actual}` };
  return bytes;
}

/**
 * Visits every object `commit` reaches in `repos` (an object counts as present in any of them), each once, and
 * stops at the first one that is absent everywhere or damaged. Returns undefined when the whole commit is there.
 */
export async function walkCommit(
  commit: string,
  repos: readonly string[],
  visit: (object: ReachedObject) => void = () => undefined,
  options: {
    /**
     * Checks every compressed file object (`.filez`, an archive repo's) against its checksum too. Objects are found
     * in the first repo that holds them, so one a repo listed earlier holds is not checked in a later one.
     */
    readonly checkArchiveFiles?: boolean;
  } = {},
): Promise<WalkStop | undefined> {
  const seen = new Set<string>();
  const listings = repos.map((repo) => new RepoObjects(repo));
  await Promise.all(listings.map((listing) => listing.listed));
  const reach = async (object: ReachedObject): Promise<string | WalkStop | null> => {
    const key = `${object.checksum}.${object.kind}`;
    if (seen.has(key)) return null;
    seen.add(key);
    const file = locate(listings, object.checksum, object.kind);
    if (file === undefined) return { reason: 'missing', object };
    visit(object);
    if (options.checkArchiveFiles === true && file.endsWith('.filez')) {
      const damage = await archiveFileDamage(file, object.checksum);
      if (damage !== undefined) return { reason: 'damaged', object, detail: damage };
    }
    return file;
  };
  const commitObject: ReachedObject = { checksum: commit, kind: 'commit', where: '/' };
  const commitFile = await reach(commitObject);
  if (commitFile === null) return undefined;
  if (typeof commitFile !== 'string') return commitFile;
  const commitBytes = await readMetadata(commitFile, commitObject);
  if (!Buffer.isBuffer(commitBytes)) return commitBytes;
  let root;
  try {
    root = parseCommit(commitBytes);
  } catch (error) {
    return { reason: 'damaged', object: commitObject, detail: (error as Error).message };
  }
  const trees: Array<{ tree: string; meta: string; where: string }> = [{ ...root, where: '/' }];
  while (trees.length > 0) {
    const { tree, meta, where } = trees.pop()!;
    const metaFile = await reach({ checksum: meta, kind: 'dirmeta', where });
    if (metaFile !== null && typeof metaFile !== 'string') return metaFile;
    const treeObject: ReachedObject = { checksum: tree, kind: 'dirtree', where };
    const treeFile = await reach(treeObject);
    if (treeFile === null) continue;
    if (typeof treeFile !== 'string') return treeFile;
    const treeBytes = await readMetadata(treeFile, treeObject);
    if (!Buffer.isBuffer(treeBytes)) return treeBytes;
    let parsed: DirTree;
    try {
      parsed = parseDirTree(treeBytes);
    } catch (error) {
      return { reason: 'damaged', object: treeObject, detail: (error as Error).message };
    }
    for (const file of parsed.files) {
      const reached = await reach({ checksum: file.checksum, kind: 'file', where: childPath(where, file.name) });
      if (reached !== null && typeof reached !== 'string') return reached;
    }
    for (const dir of [...parsed.dirs].reverse())
      trees.push({ tree: dir.tree, meta: dir.meta, where: childPath(where, dir.name) });
  }
  return undefined;
}

/** A name's path in the tree under its directory's (names hold no '/', parseDirTree checks). */
function childPath(where: string, name: string): string {
  return where === '/' ? `/${name}` : `${where}/${name}`;
}

/** Why a compressed file object is not the object its name says, or undefined when it is. */
async function archiveFileDamage(file: string, checksum: string): Promise<string | undefined> {
  const hasher = new ArchiveFileObjectHasher();
  for await (const chunk of createReadStream(file)) await hasher.update(chunk as Buffer);
  const actual = await hasher.digest();
  if (actual instanceof Error) return `not an OSTree file object: ${actual.message}`;
  return actual === checksum ? undefined : `hashes to ${actual}`;
}

/**
 * The first object `commit` reaches that is absent from every one of `repos` or damaged (metadata and compressed
 * file objects are checked against their checksums), or undefined when the whole commit is there and sound.
 */
export async function findBadObject(commit: string, repos: readonly string[]): Promise<WalkStop | undefined> {
  return walkCommit(commit, repos, undefined, { checkArchiveFiles: true });
}

/** One line naming a damaged object of a bundle's ostree_repo/, what it is in the tree, and what is wrong. */
export function describeDamagedObject(stop: Extract<WalkStop, { reason: 'damaged' }>): string {
  const { object } = stop;
  const what = object.kind === 'commit' ? 'the commit' : `the ${object.kind} of ${object.where}`;
  return `ostree_repo/${objectPath(object.checksum, object.kind)} (${what}) is damaged: ${stop.detail}`;
}

/** The first object `commit` reaches that none of `repos` holds, or undefined (all there, or one is damaged). */
export async function findMissingObject(commit: string, repos: readonly string[]): Promise<ReachedObject | undefined> {
  const stop = await walkCommit(commit, repos);
  return stop?.reason === 'missing' ? stop.object : undefined;
}

/** One line naming an absent object of a bundle's ostree_repo/ and what it is in the tree. */
export function describeMissingObject(object: ReachedObject): string {
  const what = object.kind === 'commit' ? 'the commit' : `the ${object.kind} of ${object.where}`;
  return `ostree_repo/${objectPath(object.checksum, object.kind)} (${what}) is missing`;
}
