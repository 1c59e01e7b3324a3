import { promises as fs } from 'node:fs';
import path from 'node:path';
import { FerryError, describeCause } from '../errors.js';
import { OstreeRepo } from '../ostree/ostree-repo.js';
import type { FactoryRepo } from '../repo/factory-repo.js';
import { isEmptyOrMissingDir } from '../util/atomic-file.js';
import { BUNDLE_TARGETS_FILE, signBundleTargets, type BundleType } from '../tuf/bundle-targets.js';
import { expiresInDays, formatExpires, parseExpires } from '../tuf/expires.js';
import { serializeMetadata } from '../tuf/sign-metadata.js';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import yazl from 'yazl';
import { membersOfDirectory, writeTar, type TarMember } from '../apps/tar-pack.js';
import { pathExists, syncDirectory } from '../util/atomic-file.js';
import { processAlive } from '../util/process-alive.js';
import { extractBundleArchive } from './bundle-archive.js';
import { verifyBundleContent, verifyBundleMetadataOf, type VerifiedBundleMetadata } from './verify-bundle.js';
import { syncFilesystem } from '../util/sync-filesystem.js';
import { BIG_READ_CHUNK } from '../util/sparse-file.js';
import { isNoSpace } from '../util/no-space.js';
import type { ProgressListener } from '../progress.js';
import { withPullProgress } from '../ostree/pull-progress.js';
import { bundleLayout, type BundleDir } from './bundle-dir.js';
import { AppsDir } from '../apps/apps-dir.js';
import { copyVerifiedApps } from '../apps/copy-apps.js';
import { verifyApps } from '../apps/verify-apps.js';
import { targetFromMetadata, type AppPin } from '../tuf/target.js';
import {
  checkFitsMedia,
  isFileTooLarge,
  probeMediaFilesystem,
  type FilesystemProbe,
  type MediaFile,
  type MediaFilesystem,
} from '../util/media-filesystem.js';

function appsOf(
  name: string,
  entry: { hashes: Record<string, string>; custom?: Record<string, unknown> },
): Record<string, AppPin> {
  const target = targetFromMetadata(name, entry.hashes, entry.custom ?? {});
  if ('invalid' in target) throw new FerryError('REPO_INVALID', target.invalid);
  return { ...target.apps };
}

export interface ExportOptions {
  readonly targetName: string;
  readonly destination: string;
  readonly tag: string;
  readonly type: BundleType;
  readonly expiresInDays: number;
  /** Write one file (a tar or a zip of the bundle tree) at `destination` instead of a directory. */
  readonly archive?: 'tar' | 'zip' | undefined;
  /**
   * new: into an empty destination; add-target: add the target to the bundle there (one stick, many devices);
   * tuf-only: refresh only tuf/ of the bundle there (new expiry, new root versions after a key rotation).
   */
  readonly mode?: 'new' | 'add-target' | 'tuf-only' | undefined;
  /** Byte progress of the copy, for bars or a dashboard. */
  readonly progress?: ProgressListener | undefined;
  /**
   * A delta bundle on top of this target: only the OSTree objects the base commit does not reach, and only the
   * layers the base's apps lack. Devices must run (or hold) the base.
   */
  readonly fromTarget?: string | undefined;
  /**
   * Read the whole bundle back once written (`ostree fsck`, every blob against its digest), as `ferry verify`
   * does. Without it the content is checked while it is written (blobs hashed on the way, OSTree objects copied by
   * ostree from the verified factory repo), so the media is written once and not read again.
   */
  readonly readBack?: boolean | undefined;
  readonly now?: Date;
  /** Tells the filesystem of the media (tests stand in for a FAT32 stick with it). */
  readonly filesystemProbe?: FilesystemProbe | undefined;
}

/** Where the bundle tree of an archive export is built: never the media, which gets only the archive. */
interface TreeOptions extends ExportOptions {
  /** The tree is a scratch copy beside the factory: hard links to the factory's objects are fine there. */
  readonly scratchTree?: boolean;
  /** The filesystem the tree is written to; a scratch tree beside the factory has none of the media's limits. */
  readonly media?: MediaFilesystem | undefined;
}

export interface ExportResult {
  readonly target: string;
  /** Every target the bundle now carries. */
  readonly targets: readonly string[];
  readonly commit: string;
  readonly expires: string;
  readonly destination: string;
  readonly rootVersions: number;
  /** Offline countersignatures a production bundle still needs before a device takes it (`ferry bundle sign`). */
  readonly offlineSignaturesMissing: number;
}

/**
 * `export`: writes the bundle layout of reference §1 for one target. All checks that can refuse run before the first
 * byte is written; the finished bundle is then verified the way a device would, from 1.root.json.
 */
export async function exportBundle(repo: FactoryRepo, options: ExportOptions): Promise<ExportResult> {
  const media = await (options.filesystemProbe ?? probeMediaFilesystem)(options.destination);
  if (options.archive === undefined) return exportBundleTree(repo, { ...options, media });
  if ((options.mode ?? 'new') !== 'new') {
    throw new FerryError(
      'USAGE',
      '--allow-multiple-targets and --tuf-only work on a bundle directory: change it, then pack it with --archive',
    );
  }
  if (await pathExists(options.destination)) {
    throw new FerryError('DESTINATION_NOT_EMPTY', `${options.destination} already exists; export into a new file`);
  }
  // The tree is built beside the factory repo (ostree hard-links the objects there, nothing is copied twice) and
  // removed once it is packed: the media gets one sequential write, the archive.
  const suffix = randomBytes(4).toString('hex');
  const tree = await scratchDir(repo, 'tree');
  const verifyDir = `${options.destination}.verify-${suffix}`;
  try {
    const result = await exportBundleTree(repo, { ...options, destination: tree, scratchTree: true });
    const partial = `${options.destination}.partial`;
    const members = await membersOfDirectory(tree);
    await checkArchiveFitsMedia(members, options.destination, media);
    try {
      await packBundle(members, partial, options.archive);
      // With --read-back, verified as a device reads it: unpacked with every member check, then the whole bundle.
      if (options.readBack === true) {
        await extractBundleArchive(partial, options.archive, verifyDir).catch((error: unknown) => {
          throw exportVerifyFailed(error, `the written ${options.archive}`);
        });
        const unpacked = bundleLayout(verifyDir);
        const now = options.now ?? new Date();
        const metadata = await verifyExportMetadata(repo, unpacked, options.targetName, result.commit, now);
        await verifyExportContent(unpacked, metadata, true, undefined, options.progress);
      }
      await flushMedia(partial, media, partial);
      await fs.rename(partial, options.destination);
      await syncDirectory(path.dirname(options.destination));
    } catch (error) {
      await fs.rm(partial, { force: true });
      throw writeFailure(error, media, path.dirname(options.destination));
    }
    return { ...result, destination: options.destination };
  } finally {
    await fs.rm(tree, { recursive: true, force: true });
    await fs.rm(verifyDir, { recursive: true, force: true });
  }
}

/**
 * A scratch directory beside the factory repo (on its filesystem, where ostree hard-links instead of copying), named
 * after this process. What an export killed half-way left there goes first.
 */
async function scratchDir(repo: FactoryRepo, kind: 'tree' | 'base' | 'rootfs'): Promise<string> {
  for (const name of await fs.readdir(repo.dir)) {
    const owner = /^\.export-(?:tree|base|rootfs)-(\d+)-/.exec(name)?.[1];
    if (owner !== undefined && !processAlive(Number(owner)))
      await fs.rm(path.join(repo.dir, name), { recursive: true, force: true });
  }
  return fs.mkdtemp(path.join(repo.dir, `.export-${kind}-${process.pid}-`));
}

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

/** Packs a bundle tree into one file: members in a fixed order, with fixed times and owners. */
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

/** What an existing bundle says it carries: read from our own stick, and checked again by the verification after. */
async function existingBundle(destination: string): Promise<{ type: BundleType; tags: string[]; targets: string[] }> {
  let document: {
    signed?: { 'x-ferry-bundle'?: { type?: unknown; tag?: unknown; tags?: unknown; targets?: unknown } };
  };
  try {
    document = JSON.parse(await fs.readFile(path.join(destination, 'tuf', BUNDLE_TARGETS_FILE), 'utf8'));
  } catch (error) {
    throw new FerryError(
      'BUNDLE_UNREADABLE',
      `${destination} is not a bundle this command can add to: ${describeCause(error)}`,
      { cause: error },
    );
  }
  const info = document.signed?.['x-ferry-bundle'] ?? {};
  const strings = (value: unknown) =>
    Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : [];
  if ((info.type !== 'ci' && info.type !== 'prod') || typeof info.tag !== 'string')
    throw new FerryError('BUNDLE_UNREADABLE', `${destination}/tuf/${BUNDLE_TARGETS_FILE} has no type and tag`);
  const tags = strings(info.tags);
  return { type: info.type, tags: tags.length > 0 ? tags : [info.tag], targets: strings(info.targets) };
}

async function exportBundleTree(repo: FactoryRepo, options: TreeOptions): Promise<ExportResult> {
  const now = options.now ?? new Date();
  if (!Number.isInteger(options.expiresInDays) || options.expiresInDays < 1) {
    throw new FerryError(
      'USAGE',
      `--expires-in-days must be a whole number of days, at least 1 (got ${options.expiresInDays})`,
    );
  }
  const targets = await repo.targets();
  const entry = targets[options.targetName];
  if (entry === undefined) {
    const known = Object.keys(targets);
    throw new FerryError(
      'TARGET_UNKNOWN',
      `the repository has no target "${options.targetName}" (it has: ${known.join(', ') || 'none'})`,
    );
  }
  const tags = (entry.custom?.['tags'] as string[] | undefined) ?? [];
  if (!tags.includes(options.tag)) {
    throw new FerryError(
      'TAG_NOT_ON_TARGET',
      `target "${options.targetName}" does not carry tag "${options.tag}" (it has: ${tags.join(', ') || 'none'})`,
    );
  }
  const expires = expiresInDays(now, options.expiresInDays);
  const root = await repo.readRole('root');
  const rootExpires = parseExpires(root.signed['expires']);
  if (rootExpires === undefined || rootExpires.getTime() < new Date(expires).getTime()) {
    throw new FerryError(
      'EXPIRY_TOO_LATE',
      `the bundle would expire at ${expires}, after root.json version ${String(root.signed['version'])} (expires ${String(root.signed['expires'])}); choose fewer --expires-in-days`,
    );
  }
  const empty = await isEmptyOrMissingDir(options.destination);
  const mode = options.mode ?? 'new';
  if (mode === 'new' && !empty) {
    throw new FerryError(
      'DESTINATION_NOT_EMPTY',
      `${options.destination} is not empty; export into a new or empty directory (or add to a bundle with --allow-multiple-targets)`,
    );
  }
  if (mode === 'tuf-only' && empty)
    throw new FerryError('BUNDLE_UNREADABLE', `${options.destination} holds no bundle whose tuf/ could be refreshed`);
  // Adding to an empty directory is a new bundle.
  const previous = empty ? undefined : await existingBundle(options.destination);
  if (previous !== undefined) {
    if (previous.type !== options.type) {
      throw new FerryError(
        'USAGE',
        `${options.destination} is a "${previous.type}" bundle; a "${options.type}" export cannot be added to it`,
      );
    }
    if (mode === 'tuf-only' && !previous.targets.includes(options.targetName)) {
      throw new FerryError(
        'TARGET_UNKNOWN',
        `the bundle carries ${previous.targets.join(', ')}, not "${options.targetName}"; --tuf-only refreshes the metadata of what it carries`,
      );
    }
  }
  const commit = entry.hashes['sha256'] ?? '';
  if (!(await repo.ostree.hasCommitObject(commit))) {
    throw new FerryError(
      'REPO_INVALID',
      `the factory OSTree repo lacks commit ${commit} of target "${options.targetName}"`,
    );
  }
  let baseCommit: string | undefined;
  if (options.fromTarget !== undefined) {
    if (mode !== 'new') throw new FerryError('USAGE', '--from makes a new delta bundle: it does not add to one');
    const baseEntry = targets[options.fromTarget];
    if (baseEntry === undefined)
      throw new FerryError('TARGET_UNKNOWN', `the repository has no base target "${options.fromTarget}"`);
    baseCommit = baseEntry.hashes['sha256'] ?? '';
    if (!(await repo.ostree.hasCommitObject(baseCommit)))
      throw new FerryError(
        'REPO_INVALID',
        `the factory OSTree repo lacks commit ${baseCommit} of "${options.fromTarget}"`,
      );
  }
  const names = [...new Set([...(previous?.targets ?? []), options.targetName])];
  const bundleTags = [...new Set([...(previous?.tags ?? []), options.tag])];
  for (const name of names) {
    if (targets[name] === undefined)
      throw new FerryError('TARGET_UNKNOWN', `the bundle carries "${name}", which the repository no longer has`);
  }

  const bundle = bundleLayout(options.destination);
  // New metadata is written beside the old and swapped in only once the whole bundle verifies with it: a failed
  // export into an existing bundle leaves that bundle as it was (at most with extra, unreferenced content).
  const nextTuf = previous === undefined ? bundle.tufDir : `${bundle.tufDir}.next`;
  await fs.rm(`${bundle.tufDir}.next`, { recursive: true, force: true });
  await fs.mkdir(nextTuf, { recursive: true });
  // The base's objects, pulled beside the factory repo (hard links, not copies): what the delta leaves out, and what
  // its check pulls on top of. Never on the media, which gets only the delta.
  const baseScratch = baseCommit === undefined ? undefined : await scratchDir(repo, 'base');
  try {
    // The rootfs copy is the long pole, so it starts first; the metadata is signed and checked from the trusted
    // root while ostree copies, and the app blobs are copied (hashed on the way) on the other core. Everything
    // settles before a failure is handled: nothing may still be writing while a failed export is cleared away.
    const copies =
      mode === 'tuf-only'
        ? []
        : [
            copyRootfs(repo, bundle, options, commit, previous === undefined, baseScratch, baseCommit),
            copyApps(repo, bundle, options, targets, entry),
          ];
    const signed = signBundleMetadata(repo, nextTuf, {
      targets,
      expires,
      type: options.type,
      tags: bundleTags,
      names,
      base: baseCommit === undefined ? undefined : { target: options.fromTarget!, commit: baseCommit },
      now,
    }).then(async (rootVersions) => ({
      rootVersions,
      verified: await verifyExportMetadata(repo, { ...bundle, tufDir: nextTuf }, options.targetName, commit, now),
    }));
    const [metadata, ...copied] = await Promise.allSettled([signed, ...copies]);
    for (const outcome of [metadata!, ...copied]) if (outcome.status === 'rejected') throw outcome.reason;
    const { rootVersions, verified } = (metadata as PromiseFulfilledResult<Awaited<typeof signed>>).value;

    // The ref is set while the content is checked; both settle before a failure is handled, as above. An archive
    // is read back once it is packed, not here.
    const readBack = options.readBack === true && options.archive === undefined;
    const checked = await Promise.allSettled([
      mode === 'tuf-only' ? undefined : bundle.ostreeRepo.setRef(options.targetName, commit),
      verifyExportContent(
        { ...bundle, tufDir: nextTuf },
        verified,
        readBack,
        baseScratch === undefined
          ? undefined
          : { ostreeRepo: path.join(baseScratch, 'repo'), hasLayer: (digest) => repo.apps.blobs.has(digest) },
        // Only a read-back checks bytes: without it there is nothing to show.
        readBack ? options.progress : undefined,
      ),
    ]);
    for (const outcome of checked) if (outcome.status === 'rejected') throw outcome.reason;
    // ostree and the blob copies wrote without syncing each file: the media is flushed once, here, before the
    // bundle counts as written. A scratch tree is not the media; its archive is flushed when it is packed.
    if (options.scratchTree !== true)
      await flushMedia(options.destination, options.media, path.join(bundle.ostreeRepo.path, 'config'));
    if (previous !== undefined) await swapDirectory(nextTuf, bundle.tufDir);
    return {
      target: options.targetName,
      targets: names,
      commit,
      expires,
      destination: options.destination,
      rootVersions,
      offlineSignaturesMissing: verified.bundle.offlineSignaturesMissing,
    };
  } catch (error) {
    // Leave no half-written bundle behind for someone to carry to a device; an existing one keeps its metadata.
    if (previous === undefined) await removeContents(options.destination);
    else await fs.rm(nextTuf, { recursive: true, force: true });
    throw writeFailure(error, options.media, options.destination);
  } finally {
    if (baseScratch !== undefined) await fs.rm(baseScratch, { recursive: true, force: true });
  }
}

/**
 * Writes the bundle's tuf/: the factory's root versions, targets, snapshot and timestamp re-signed to `expires`,
 * and bundle-targets.json naming what the stick carries. Returns how many root versions it holds.
 */
async function signBundleMetadata(
  repo: FactoryRepo,
  tufDir: string,
  bundle: {
    targets: Awaited<ReturnType<FactoryRepo['targets']>>;
    expires: string;
    type: BundleType;
    tags: readonly string[];
    names: readonly string[];
    base: { target: string; commit: string } | undefined;
    now: Date;
  },
): Promise<number> {
  const rootFiles = await repo.rootFiles();
  for (const file of rootFiles) await fs.copyFile(file, path.join(tufDir, path.basename(file)));
  const published = await repo.publishTargets(bundle.targets, bundle.expires);
  await fs.writeFile(path.join(tufDir, 'targets.json'), serializeMetadata(published.targets));
  await fs.writeFile(path.join(tufDir, 'snapshot.json'), serializeMetadata(published.snapshot));
  await fs.writeFile(path.join(tufDir, 'timestamp.json'), serializeMetadata(published.timestamp));

  const settings = await repo.settings();
  const bundleVersion = settings.bundleVersion + 1;
  await repo.saveSettings({ ...settings, bundleVersion });
  const bundleTargets = signBundleTargets(
    {
      _type: 'bundle',
      expires: bundle.expires,
      version: bundleVersion,
      'x-ferry-bundle': {
        type: bundle.type,
        tag: bundle.tags[0]!,
        ...(bundle.tags.length > 1 ? { tags: [...bundle.tags] } : {}),
        targets: [...bundle.names],
        ...(bundle.base === undefined ? {} : { base: bundle.base }),
        // Signed with the rest: devices without a working clock take it as a lower bound for the time.
        signedAt: formatExpires(bundle.now),
      },
    },
    await repo.keys.load('targets'),
  );
  await fs.writeFile(path.join(tufDir, BUNDLE_TARGETS_FILE), serializeMetadata(bundleTargets));
  return rootFiles.length;
}

/**
 * Removes from `objectsDir` every object `baseObjectsDir` holds: what a device at the base already has. The target's
 * own commit object stays, even when the base shares it (an apps-only change): a stick names what it carries.
 */
async function removeObjectsOf(baseObjectsDir: string, objectsDir: string, keepCommit: string): Promise<void> {
  for (const prefix of await fs.readdir(baseObjectsDir)) {
    for (const name of await fs.readdir(path.join(baseObjectsDir, prefix))) {
      if (`${prefix}${name}`.startsWith(`${keepCommit}.commit`)) continue;
      await fs.rm(path.join(objectsDir, prefix, name), { force: true });
    }
  }
}

/** Replaces `dir` with `next`: the old one is renamed away first, then removed, so a reader never sees a mix. */
async function swapDirectory(next: string, dir: string): Promise<void> {
  const old = `${dir}.old`;
  await fs.rm(old, { recursive: true, force: true });
  await fs.rename(dir, old);
  await fs.rename(next, dir);
  await fs.rm(old, { recursive: true, force: true });
}

/**
 * The target's commit and all it reaches, from the factory repo into the bundle's; for a delta, minus the base. The
 * ref that names it is set once the content is checked.
 */
async function copyRootfs(
  repo: FactoryRepo,
  bundle: BundleDir,
  options: TreeOptions,
  commit: string,
  newRepo: boolean,
  baseScratch: string | undefined,
  baseCommit: string | undefined,
): Promise<void> {
  // Objects a bundle already holds are not copied again: targets share what they can.
  if (newRepo) await OstreeRepo.create(bundle.ostreeRepo.path, 'archive');
  // ostree writes its objects with hard links and rename flags that FAT32, exFAT and FUSE filesystems lack: there it
  // pulls beside the factory, and the objects are copied onto the media with plain writes.
  const plainWrites = options.media?.hardLinks === false;
  const rootfsScratch = plainWrites ? await scratchDir(repo, 'rootfs') : undefined;
  const progress = options.progress;
  const reportRootfs =
    progress &&
    ((bytes: number, total: number) => progress({ phase: 'rootfs', bytes, total, target: options.targetName }));
  try {
    const into =
      rootfsScratch === undefined
        ? bundle.ostreeRepo
        : await OstreeRepo.create(path.join(rootfsScratch, 'repo'), 'archive');
    // The media is flushed once when everything is written (see exportBundleTree); a scratch tree never is.
    const pull = () => into.pullLocal(repo.ostree.path, commit, { untrusted: false, disableFsync: true });
    // Beside the factory the pull only links; the copy onto the media is what takes time, and reports the progress.
    if (rootfsScratch !== undefined) await pull();
    else await withPullProgress({ source: repo.ostree, destination: into, commit }, reportRootfs, pull);
    if (baseScratch !== undefined) {
      const baseRepo = await OstreeRepo.create(path.join(baseScratch, 'repo'), 'archive');
      // Scratch, removed after the export: nothing to make durable.
      await baseRepo.pullLocal(repo.ostree.path, baseCommit!, { untrusted: false, disableFsync: true });
      await removeObjectsOf(path.join(baseRepo.path, 'objects'), path.join(into.path, 'objects'), commit);
    }
    if (rootfsScratch !== undefined)
      await copyObjectsOntoMedia(into, bundle.ostreeRepo, options.media!, (bytes, total) =>
        reportRootfs?.(bytes, total),
      );
    // On the same filesystem ostree hard-links objects: the stick must never share an inode with the factory.
    else if (options.scratchTree !== true && (await sameFilesystem(repo.ostree.path, bundle.ostreeRepo.path)))
      await unshareHardLinks(path.join(bundle.ostreeRepo.path, 'objects'));
  } finally {
    if (rootfsScratch !== undefined) await fs.rm(rootfsScratch, { recursive: true, force: true });
  }
}

/**
 * Copies the objects of `from` that `to` lacks, with nothing but create and write: what every filesystem a stick can
 * carry offers. Every object is measured against the media's file size limit before the first one is written. The
 * media is flushed once with the rest of the bundle.
 */
async function copyObjectsOntoMedia(
  from: OstreeRepo,
  to: OstreeRepo,
  media: MediaFilesystem,
  progress: (bytes: number, total: number) => void,
): Promise<void> {
  const objectsDir = path.join(from.path, 'objects');
  const copies: { source: string; target: string; file: MediaFile }[] = [];
  for (const prefix of await fs.readdir(objectsDir)) {
    for (const name of await fs.readdir(path.join(objectsDir, prefix))) {
      const relative = path.join('objects', prefix, name);
      if (await pathExists(path.join(to.path, relative))) continue;
      const source = path.join(from.path, relative);
      const bytes = (await fs.stat(source)).size;
      copies.push({ source, target: path.join(to.path, relative), file: { name: `ostree_repo/${relative}`, bytes } });
    }
  }
  checkFitsMedia(
    media,
    to.path,
    copies.map((copy) => copy.file),
  );
  const total = copies.reduce((sum, copy) => sum + copy.file.bytes, 0);
  let bytes = 0;
  let reported = 0;
  progress(bytes, total);
  const made = new Set<string>();
  for (const copy of copies) {
    const dir = path.dirname(copy.target);
    if (!made.has(dir)) {
      await fs.mkdir(dir, { recursive: true });
      made.add(dir);
    }
    await pipeline(createReadStream(copy.source, { highWaterMark: BIG_READ_CHUNK }), createWriteStream(copy.target));
    bytes += copy.file.bytes;
    // Tens of thousands of objects: one event per half per cent, not one per object.
    if (bytes - reported >= total / 200 || bytes === total) {
      reported = bytes;
      progress(bytes, total);
    }
  }
}

async function sameFilesystem(a: string, b: string): Promise<boolean> {
  const [first, second] = await Promise.all([fs.stat(a), fs.stat(b)]);
  return first.dev === second.dev;
}

/** The target's apps, from the factory's verified digest chain; every blob hashed as it is written. */
async function copyApps(
  repo: FactoryRepo,
  bundle: BundleDir,
  options: TreeOptions,
  targets: Awaited<ReturnType<FactoryRepo['targets']>>,
  entry: { hashes: Record<string, string>; custom?: Record<string, unknown> },
): Promise<void> {
  // Flushed once with the rest of the media, not blob by blob.
  const apps = new AppsDir(bundle.appsDir, { syncEachBlob: false });
  const verifiedApps = await verifyApps(repo.apps, appsOf(options.targetName, entry), 'factory apps/').catch(
    (error: unknown) => {
      throw new FerryError('REPO_INVALID', `the factory's apps do not verify: ${describeCause(error)}`, {
        cause: error,
      });
    },
  );
  // Every blob the media's filesystem cannot hold is refused before the first one is written.
  if (options.media !== undefined)
    checkFitsMedia(
      options.media,
      bundle.appsDir,
      verifiedApps.flatMap((app) =>
        app.images.flatMap((image) =>
          image.blobs.map((blob) => ({ name: `apps/blobs/${blob.digest.replace(':', '/')}`, bytes: blob.size })),
        ),
      ),
    );
  await fs.mkdir(apps.root, { recursive: true });
  const appBytes = verifiedApps.reduce(
    (sum, app) =>
      sum + app.images.reduce((bytes, image) => bytes + image.blobs.reduce((n, blob) => n + blob.size, 0), 0),
    0,
  );
  const progress = options.progress;
  progress?.({ phase: 'apps', bytes: 0, total: appBytes, target: options.targetName });
  const baseLayers = new Set<string>();
  if (options.fromTarget !== undefined) {
    for (const app of await verifyApps(repo.apps, appsOf(options.fromTarget, targets[options.fromTarget]!)))
      for (const image of app.images) for (const layer of image.blobs.slice(2)) baseLayers.add(layer.digest);
  }
  await copyVerifiedApps(repo.apps, apps, verifiedApps, {
    unpackProject: false,
    // Manifests and configs always travel (they are small and the digest chain starts from them); layers the
    // base already has do not.
    skipBlob: async (digest) => baseLayers.has(digest),
    ...(progress
      ? {
          onProgress: async (bytes: number) =>
            progress({ phase: 'apps', bytes: Math.min(bytes, appBytes), total: appBytes, target: options.targetName }),
        }
      : {}),
  });
  progress?.({ phase: 'apps', bytes: appBytes, total: appBytes, target: options.targetName });
}

async function unshareHardLinks(dir: string): Promise<void> {
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      await unshareHardLinks(full);
    } else if (entry.isFile() && (await fs.stat(full)).nlink > 1) {
      await fs.copyFile(full, `${full}.copy`);
      await fs.rename(`${full}.copy`, full);
    }
  }
}

async function removeContents(dir: string): Promise<void> {
  for (const name of await fs.readdir(dir).catch(() => [] as string[]))
    await fs.rm(path.join(dir, name), { recursive: true, force: true });
}

/** Verifies the written metadata as a fresh device would: from 1.root.json, through tuf-js. */
async function verifyExportMetadata(
  repo: FactoryRepo,
  bundle: BundleDir,
  targetName: string,
  commit: string,
  now: Date,
): Promise<VerifiedBundleMetadata> {
  try {
    // Offline countersignatures are added after the export (bundle sign): here they are only counted.
    const verified = await verifyBundleMetadataOf(bundle, {
      trustedRoot: (await repo.rootFiles())[0]!,
      now,
      offlineSignatures: 'count',
    });
    const target = verified.targets.find((candidate) => candidate.name === targetName);
    if (target === undefined || target.commit !== commit)
      throw new Error(`target "${targetName}" is not verifiable in the written metadata`);
    return verified;
  } catch (error) {
    throw exportVerifyFailed(error);
  }
}

/** Then the content that metadata names, on the media: every target's commit and every app's digest chain. */
async function verifyExportContent(
  bundle: BundleDir,
  verified: VerifiedBundleMetadata,
  readBack: boolean,
  baseContent?: { ostreeRepo: string; hasLayer: (digest: string) => Promise<boolean> },
  progress?: ProgressListener,
): Promise<void> {
  try {
    await verifyBundleContent(bundle, verified, { readBack, progress, ...(baseContent ? { baseContent } : {}) });
  } catch (error) {
    throw exportVerifyFailed(error);
  }
}

function exportVerifyFailed(error: unknown, what = 'the written bundle'): FerryError {
  if (error instanceof FerryError && error.outcome === 'EXPORT_VERIFY_FAILED') return error;
  return new FerryError('EXPORT_VERIFY_FAILED', `${what} failed verification: ${describeCause(error)}`, {
    cause: error,
  });
}

/** Makes what was written to the media durable: one flush of its filesystem (see exportBundleTree). */
async function flushMedia(target: string, media: MediaFilesystem | undefined, written: string): Promise<void> {
  try {
    await syncFilesystem(target);
    // A FUSE filesystem (exfat-fuse) keeps its allocation tables in its own process: it writes them out on an fsync
    // of any of its files, not on syncfs.
    if (media?.hardLinks === false) await syncFile(written);
  } catch (error) {
    throw new FerryError(
      'MEDIA_WRITE_FAILED',
      `what was written to ${target} could not be flushed to the media (${describeCause(error)}); the export was undone`,
      { cause: error },
    );
  }
}

async function syncFile(file: string): Promise<void> {
  const handle = await fs.open(file, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** A full disk is the operator's to fix, not a bug: it gets its own code. Anything else unforeseen is a bug. */
function writeFailure(error: unknown, media: MediaFilesystem | undefined, where: string): FerryError {
  if (error instanceof FerryError) return error;
  if (isFileTooLarge(error))
    return new FerryError(
      'MEDIA_FILE_TOO_LARGE',
      `a file of the bundle is larger than ${media?.name ?? 'the filesystem'} at ${where} allows (${describeCause(error)}): use an exFAT (or ext4) stick; the export was undone`,
      { cause: error },
    );
  if (isNoSpace(error))
    return new FerryError(
      'MEDIA_WRITE_FAILED',
      `no space left while the bundle was written (${describeCause(error)}); the export was undone`,
      { cause: error },
    );
  return new FerryError('INTERNAL_ERROR', `export failed: ${describeCause(error)}`, { cause: error });
}
