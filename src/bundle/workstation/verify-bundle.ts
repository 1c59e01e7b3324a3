import '../../tuf/models-patch.js';
import { removeTree } from '../../util/remove-tree.js';
import { promises as fs } from 'node:fs';
import { Metadata, MetadataKind } from '@tufjs/models';
import os from 'node:os';
import path from 'node:path';
import { AppsDir } from '../../apps/format/apps-dir.js';
import { verifyApps } from '../../apps/format/verify-apps.js';
import { treeBytes } from '../../util/free-space.js';
import { FerryError, describeCause } from '../../errors.js';
import type { BundleTargets, StaticDeltaRootfs } from '../../tuf/bundle-targets.js';
import { checkStaticDelta, staticDeltaPath } from '../format/static-delta.js';
import { detectStickFormat, type StickFormat } from '../../tuf/foundries/stick-format.js';
import { verifyFoundriesStick } from '../../tuf/foundries/fio-verify-stick.js';
import { readStickMetadataFiles } from '../../tuf/stick-files.js';
import type { Target } from '../../tuf/target.js';
import { discardScratch, verifyBundleMetadata } from '../../tuf/verify-metadata.js';
import type { BundleDir } from '../format/bundle-dir.js';
import { describeMissingObject, findMissingObject } from '../../ostree/object-walk.js';
import { OstreeRepo, verifyArchiveObjects } from '../../ostree/ostree-repo.js';
import type { ProgressListener } from '../../progress.js';

/** What the metadata of a bundle says, verified: the part of a bundle check that reads only its tuf/. */
export interface VerifiedBundleMetadata {
  /** Which TUF format the stick carries; its apps are in that format's layout. Absent: ferry's. */
  readonly stickFormat?: StickFormat | undefined;
  readonly rootVersion: number;
  readonly bundle: BundleTargets;
  readonly targets: readonly Target[];
}

export interface BundleVerification extends VerifiedBundleMetadata {
  readonly blobsChecked: number;
  /** The bundle's size on the media; counted only when it is read back (an export knows what it wrote). */
  readonly sizeBytes: number | undefined;
}

export interface BundleMetadataOptions {
  readonly trustedRoot: string;
  readonly now?: Date;
  readonly offlineSignatures?: 'require' | 'count';
}

export interface BundleContentOptions {
  /** Bytes of app blobs checked so far, for bars or a dashboard. */
  readonly progress?: ProgressListener | undefined;
  /**
   * For a delta bundle, where its base's content is: a repo holding the base commit (then every object of the
   * target is checked by an untrusted pull on top of it) and the layers it has. Without it, the objects and blobs
   * the bundle holds are checked, and what it leaves to the base is taken as the device's to have.
   */
  readonly baseContent?: {
    readonly ostreeRepo: string;
    readonly hasLayer: (digest: string) => Promise<boolean>;
  };
  /**
   * Re-read every byte of content: `ostree fsck` and each blob against its digest (the default, for `verify`).
   * An export that hashed the blobs while it wrote them checks only the metadata and the digest chain, so that
   * the media is written once and never read twice.
   */
  readonly readBack?: boolean;
}

/**
 * Checks a whole bundle the way a device would take it, and more: the metadata from `trustedRoot` through every
 * newer root (tuf-js), expiry at `now`, bundle-targets.json against the newest root's targets keys; then every
 * target it names: verifiable, its commit on the stick, every OSTree object sound (fsck), every app along its digest
 * chain and every blob against its digest. Refusals carry the device's own exit codes.
 */
export async function verifyBundle(
  bundle: BundleDir,
  options: BundleMetadataOptions & BundleContentOptions,
): Promise<BundleVerification> {
  return verifyBundleContent(bundle, await verifyBundleMetadataOf(bundle, options), options);
}

/**
 * The first half of verifyBundle: tuf/ alone, from `trustedRoot`. An export runs it while its content is still
 * being written.
 */
export async function verifyBundleMetadataOf(
  bundle: BundleDir,
  options: BundleMetadataOptions,
): Promise<VerifiedBundleMetadata> {
  // Read once, for both the format check and the verifier; a stick that cannot be read is refused by the latter.
  const files = await readStickMetadataFiles(bundle.tufDir).catch(() => undefined);
  if (files !== undefined && isFoundriesStick(files)) return verifyFoundriesMetadata(bundle, files, options);
  const trustedDir = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-verify-'));
  try {
    await fs.writeFile(path.join(trustedDir, 'root.json'), await readTrustedRoot(bundle, options.trustedRoot));
    const verified = await verifyBundleMetadata({
      trustedDir,
      bundleTufDir: bundle.tufDir,
      ...(files !== undefined ? { bundleFiles: files } : {}),
      ...(options.now ? { now: options.now } : {}),
      offlineSignatures: options.offlineSignatures ?? 'require',
    });
    await discardScratch(verified);
    refuseUnusable(verified.unusable);
    return { rootVersion: verified.rootVersion, bundle: verified.bundle, targets: verified.targets };
  } finally {
    await fs.rm(trustedDir, { recursive: true, force: true });
  }
}

/**
 * Whether the stick's tuf/ files are in the Foundries format. A stick whose format cannot be told goes to ferry's
 * verifier, which refuses it with the codes it always gave.
 */
function isFoundriesStick(files: ReadonlyMap<string, Uint8Array>): boolean {
  try {
    return detectStickFormat(files) === 'foundries';
  } catch {
    return false;
  }
}

function refuseUnusable(unusable: readonly string[]): void {
  if (unusable.length > 0) {
    throw new FerryError(
      'BUNDLE_METADATA_INVALID',
      `bundle-targets.json names targets that do not verify: ${unusable.join('; ')}`,
    );
  }
}

/**
 * A Foundries-format stick (fioctl's, or ferry's exported with --format fioctl), through ferry's own verifier of
 * that format, from the trusted root's bytes as a device holding that root would walk it.
 */
async function verifyFoundriesMetadata(
  bundle: BundleDir,
  files: ReadonlyMap<string, Uint8Array>,
  options: BundleMetadataOptions,
): Promise<VerifiedBundleMetadata> {
  const root = await readTrustedRoot(bundle, options.trustedRoot, 'Root');
  const verified = verifyFoundriesStick({
    trusted: { root },
    files,
    now: options.now ?? new Date(),
    signatures: options.offlineSignatures ?? 'require',
  });
  refuseUnusable(verified.unusable);
  return {
    stickFormat: 'foundries',
    rootVersion: verified.rootVersion,
    bundle: verified.bundle,
    targets: verified.targets,
  };
}

/**
 * The trusted root's bytes, once they are seen to be a root metadata file. One given on the command line that cannot
 * be read, or is not a root, is the operator's file problem (24, 26); the bundle's own 1.root.json (the default) is
 * the bundle's (14, 15).
 */
async function readTrustedRoot(
  bundle: BundleDir,
  file: string,
  /** A Foundries root, `_type` "Root", is read by that format's verifier; here only its type is checked. */
  foundriesType?: 'Root',
): Promise<Buffer> {
  const ownRoot = path.resolve(path.dirname(file)) === path.resolve(bundle.tufDir);
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(file);
  } catch (error) {
    if (ownRoot)
      throw new FerryError('METADATA_NOT_FOUND', `tuf/${path.basename(file)}: ${describeCause(error)}`, {
        cause: error,
      });
    throw new FerryError('TRUSTED_ROOT_UNREADABLE', `cannot read the trusted root ${file}: ${describeCause(error)}`, {
      cause: error,
    });
  }
  try {
    const json = JSON.parse(bytes.toString('utf8')) as { signed?: { _type?: unknown } };
    if (foundriesType === undefined) Metadata.fromJSON(MetadataKind.Root, json as never);
    else if (json?.signed?._type !== foundriesType) throw new Error(`its _type is not "${foundriesType}"`);
  } catch (error) {
    if (ownRoot)
      throw new FerryError('METADATA_MALFORMED', `tuf/${path.basename(file)}: ${describeCause(error)}`, {
        cause: error,
      });
    throw new FerryError(
      'TRUSTED_ROOT_INVALID',
      `the trusted root ${file} is not a root.json: ${describeCause(error)}`,
      {
        cause: error,
      },
    );
  }
  return bytes;
}

/** The second half of verifyBundle: the content the verified metadata names, on the stick. */
export async function verifyBundleContent(
  bundle: BundleDir,
  verified: VerifiedBundleMetadata,
  options: BundleContentOptions,
): Promise<BundleVerification> {
  const base = verified.bundle.base;
  const readBack = options.readBack ?? true;
  const baseRepo = options.baseContent?.ostreeRepo;
  const staticDelta = verified.bundle.rootfs;
  if (staticDelta !== undefined)
    await verifyStaticDeltaContent(bundle, verified.targets, staticDelta, readBack, baseRepo);
  else await verifyRepoContent(bundle, verified.targets, base?.commit, readBack, baseRepo);
  const layerElsewhere = base === undefined ? undefined : (options.baseContent?.hasLayer ?? (async () => true));
  const apps = new AppsDir(bundle.appsDir, undefined, verified.stickFormat === 'foundries' ? 'foundries' : 'ferry');
  const checked = new Set<string>();
  const leftToBase = new Set<string>();
  const toCheck = new Map<string, number>();
  const verifiedApps = [];
  for (const target of verified.targets) {
    for (const app of await verifyApps(apps, target.apps, 'apps/', layerElsewhere)) {
      verifiedApps.push({ target: target.name, app });
      for (const image of app.images) for (const blob of image.blobs) toCheck.set(blob.digest, blob.size);
    }
  }
  const total = [...toCheck.values()].reduce((sum, size) => sum + size, 0);
  let bytes = 0;
  options.progress?.({ phase: 'verify', bytes, total });
  for (const { target, app } of readBack ? verifiedApps : []) {
    for (const image of app.images) {
      for (const blob of image.blobs) {
        if (checked.has(blob.digest) || leftToBase.has(blob.digest)) continue;
        // A layer a delta leaves to its base was accepted by verifyApps as being there already: it counts as done,
        // so that a bundle that verifies ends its progress complete.
        if (layerElsewhere !== undefined && !(await apps.blobs.has(blob.digest))) {
          leftToBase.add(blob.digest);
          bytes += blob.size;
          options.progress?.({ phase: 'verify', bytes, total, target, app: app.name });
          continue;
        }
        if (!(await apps.blobs.has(blob.digest)))
          throw new FerryError('CONTENT_MISSING', `apps/blobs/sha256/${blob.digest.slice(7)} is missing`);
        if (!(await apps.blobs.verify(blob.digest, blob.size)))
          throw new FerryError('BLOB_MISMATCH', `apps/blobs/sha256/${blob.digest.slice(7)} does not match its digest`);
        checked.add(blob.digest);
        bytes += blob.size;
        options.progress?.({ phase: 'verify', bytes, total, target, app: app.name });
      }
    }
  }
  return {
    ...verified,
    blobsChecked: checked.size,
    sizeBytes: readBack ? await treeBytes(bundle.root) : undefined,
  };
}

/** The rootfs as ostree_repo/: every target's commit there, and (read back) every object sound. */
async function verifyRepoContent(
  bundle: BundleDir,
  targets: readonly Target[],
  baseCommit: string | undefined,
  readBack: boolean,
  baseRepo: string | undefined,
): Promise<void> {
  for (const target of targets) {
    if (!(await bundle.ostreeRepo.hasCommitObject(target.commit)))
      throw new FerryError('CONTENT_MISSING', `ostree_repo/ lacks commit ${target.commit} of target "${target.name}"`);
  }
  // An object the bundle lacks (8) is told from one that is damaged (70) by the objects on disk, not by ostree's
  // words; and before fsck, which would mark the commit partial on the stick.
  if (baseCommit === undefined && readBack) await refuseMissingObjects(targets, [bundle.ostreeRepo.path]);
  try {
    if (baseCommit === undefined) {
      if (readBack) await bundle.ostreeRepo.fsck();
    } else await verifyDeltaObjects(bundle, targets, baseCommit, baseRepo);
  } catch (error) {
    // A delta's base, when at hand, holds what the delta leaves out; without it, only damage can be told.
    if (baseCommit !== undefined && baseRepo !== undefined)
      await refuseMissingObjects(targets, [bundle.ostreeRepo.path, baseRepo], error);
    throw new FerryError(
      'CONTENT_VERIFICATION_FAILED',
      `ostree_repo/ failed ${baseCommit === undefined ? 'fsck' : 'verification'}: ${describeCause(error)}`,
      { cause: error },
    );
  }
}

/**
 * The rootfs as one static delta file: there, and of its signed length (and, read back, SHA-256); read back, it is
 * also applied into a scratch repo (on top of the base, for a delta bundle whose base is at hand), which
 * checks every object against its checksum, and that repo is fscked. A delta bundle checked without its base is
 * checked against its signed digest alone: what it leaves to the base is the device's to have.
 */
async function verifyStaticDeltaContent(
  bundle: BundleDir,
  targets: readonly Target[],
  rootfs: StaticDeltaRootfs,
  readBack: boolean,
  baseRepo: string | undefined,
): Promise<void> {
  for (const target of targets) await checkStaticDelta(bundle, rootfs, target, { hash: readBack });
  if (!readBack || (rootfs.from !== undefined && baseRepo === undefined)) return;
  // Beside the base's copy (an export's scratch, by the factory) when there is one; never on the media.
  const scratch = await fs.mkdtemp(
    path.join(baseRepo === undefined ? os.tmpdir() : path.dirname(baseRepo), '.static-delta-check-'),
  );
  try {
    // A delta from a base may carry binary diffs, which ostree 2022.7 aborts on when it applies them into an archive
    // repo: it goes into a bare-user one, beside the factory. A delta from nothing has none, and an archive repo needs
    // no user xattrs of the scratch filesystem (a tmpfs before Linux 6.6 has none).
    const repo = await OstreeRepo.create(
      path.join(scratch, 'repo'),
      rootfs.from === undefined ? 'archive' : 'bare-user',
    );
    if (rootfs.from !== undefined)
      await repo.pullLocal(baseRepo!, rootfs.from, { untrusted: false, disableFsync: true });
    try {
      await repo.applyStaticDelta(staticDeltaPath(bundle, rootfs));
    } catch (error) {
      throw new FerryError('STATIC_DELTA_APPLY_FAILED', `${rootfs.file} does not apply: ${describeCause(error)}`, {
        cause: error,
      });
    }
    for (const target of targets)
      if (!(await repo.hasCommitObject(target.commit)))
        throw new FerryError(
          'STATIC_DELTA_APPLY_FAILED',
          `${rootfs.file} applied, but it did not write commit ${target.commit} of target "${target.name}"`,
        );
    try {
      await repo.fsck();
    } catch (error) {
      throw new FerryError('CONTENT_VERIFICATION_FAILED', `${rootfs.file} failed fsck: ${describeCause(error)}`, {
        cause: error,
      });
    }
  } finally {
    await removeTree(scratch);
  }
}

/** Refuses (8) the first target whose commit reaches an object none of `repos` holds, naming the object. */
async function refuseMissingObjects(
  targets: readonly Target[],
  repos: readonly string[],
  cause?: unknown,
): Promise<void> {
  for (const target of targets) {
    const missing = await findMissingObject(target.commit, repos).catch(() => undefined);
    if (missing !== undefined)
      throw new FerryError('CONTENT_MISSING', `target "${target.name}": ${describeMissingObject(missing)}`, {
        cause,
      });
  }
}

/**
 * A delta's objects: each one it holds matches its name; with the base at hand, an untrusted pull of every target
 * on top of the base proves nothing is missing either.
 */
async function verifyDeltaObjects(
  bundle: BundleDir,
  targets: readonly Target[],
  baseCommit: string,
  baseRepo: string | undefined,
): Promise<void> {
  await verifyArchiveObjects(bundle.ostreeRepo.path);
  if (baseRepo === undefined) return;
  // Beside the base's copy (export's scratch, by the factory), never on the media: ostree writes its objects with
  // hard links and rename flags that a FAT32 or exFAT stick lacks.
  const scratch = await fs.mkdtemp(path.join(path.dirname(baseRepo), '.delta-check-'));
  try {
    const repo = await OstreeRepo.create(path.join(scratch, 'repo'), 'archive');
    // A scratch repo, removed after the check: nothing to make durable.
    await repo.pullLocal(baseRepo, baseCommit, { untrusted: false, disableFsync: true });
    for (const target of targets)
      await repo.pullLocal(bundle.ostreeRepo.path, target.commit, { untrusted: true, disableFsync: true });
  } finally {
    await removeTree(scratch);
  }
}
