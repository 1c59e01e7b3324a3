import { promises as fs } from 'node:fs';
import path from 'node:path';
import { FerryError, describeCause } from '../../errors.js';
import type { ProgressListener } from '../../progress.js';
import type { FactoryRepo, SignedRelease } from '../../repo/factory-repo.js';
import { BUNDLE_TARGETS_FILE, signBundleTargets, type StaticDeltaRootfs } from '../../tuf/bundle-targets.js';
import { formatExpires } from '../../tuf/expires.js';
import { serializeIn } from '../../repo/metadata-format.js';
import { signFioDocument } from '../../tuf/foundries/fio-sign.js';
import { isFileTooLarge, type MediaFilesystem } from '../../util/media-filesystem.js';
import { isNoSpace } from '../../util/no-space.js';
import { syncFilesystem } from '../../util/sync-filesystem.js';
import { syncDirectory } from '../../util/atomic-file.js';
import { bundleLayout, type BundleDir } from '../format/bundle-dir.js';
import { copyApps } from './export-apps.js';
import { baseLayers } from './export-delta.js';
import type { ExportPlan } from './export-plan.js';
import { copyRootfs } from './export-rootfs.js';
import { writeStaticDelta } from './export-static-delta.js';
import { staticDeltaName } from '../format/static-delta.js';
import { fileDigest } from '../../util/file-digest.js';
import { scratchDir } from './export-scratch.js';
import { verifyBundleContent, verifyBundleMetadataOf, type VerifiedBundleMetadata } from './verify-bundle.js';

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

/** A bundle tree written and verified; the factory's versions it signed are still to be recorded (see export.ts). */
export interface WrittenTree {
  readonly result: ExportResult;
  readonly release: SignedRelease;
}

/**
 * Writes the bundle tree of an export plan into `destination`: the rootfs, the apps and tuf/, then verified the way a
 * device would, from 1.root.json, and flushed to the media. Nothing in the factory repo is written. A failure leaves
 * no half-written bundle behind: a new one is removed, an existing one keeps its metadata.
 */
export async function writeBundleTree(
  repo: FactoryRepo,
  plan: ExportPlan,
  tree: {
    readonly destination: string;
    /** The tree is a scratch copy beside the factory (an archive's): no media, no flush, hard links allowed. */
    readonly scratchTree: boolean;
  },
): Promise<WrittenTree> {
  const { options, mode, previous, commit, now } = plan;
  const media = tree.scratchTree ? undefined : plan.media;
  const bundle = bundleLayout(tree.destination);
  // New metadata is written beside the old and swapped in only once the whole bundle verifies with it: a failed
  // export into an existing bundle leaves that bundle as it was (at most with extra, unreferenced content).
  const nextTuf = previous === undefined ? bundle.tufDir : `${bundle.tufDir}.next`;
  await fs.rm(`${bundle.tufDir}.next`, { recursive: true, force: true });
  await fs.mkdir(nextTuf, { recursive: true });
  // The base's objects, pulled beside the factory repo (hard links, not copies): what the delta leaves out, and what
  // its check pulls on top of. Never on the media, which gets only the delta.
  // A static delta is generated from the factory's own repo, and checked on top of the base pulled from there.
  const baseScratch =
    plan.base === undefined || plan.rootfs === 'static-delta' ? undefined : await scratchDir(repo, 'base');
  try {
    // The rootfs copy is the long pole, so it starts first; the metadata is signed and checked from the trusted
    // root while ostree copies, and the app blobs are copied (hashed on the way) on the other core. Everything
    // settles before a failure is handled: nothing may still be writing while a failed export is cleared away.
    // A static delta's length and SHA-256 are signed with the rest of bundle-targets.json: the metadata waits for it.
    const content =
      mode === 'tuf-only'
        ? { rootfs: keptStaticDelta(bundle, plan), copies: [] }
        : copyContent(repo, bundle, plan, { media, scratchTree: tree.scratchTree, baseScratch });
    const { copies } = content;
    const signed = content.rootfs
      .then((staticDelta) => signBundleMetadata(repo, nextTuf, plan, staticDelta))
      .then(async ({ rootVersions, release }) => ({
        rootVersions,
        release,
        verified: await verifyExportMetadata(repo, { ...bundle, tufDir: nextTuf }, options.targetName, commit, now),
      }));
    const [metadata, ...copied] = await Promise.allSettled([signed, ...copies]);
    for (const outcome of [metadata!, ...copied]) if (outcome.status === 'rejected') throw outcome.reason;
    const { rootVersions, release, verified } = (metadata as PromiseFulfilledResult<Awaited<typeof signed>>).value;

    // The ref is set while the content is checked; both settle before a failure is handled, as above. An archive
    // is read back once it is packed, not here.
    // A refreshed static-delta bundle signs its delta file anew: only once it is seen to write the target's commit.
    const readBack =
      (options.readBack === true && options.archive === undefined) ||
      (mode === 'tuf-only' && plan.rootfs === 'static-delta');
    const checked = await Promise.allSettled([
      mode === 'tuf-only' || plan.rootfs === 'static-delta'
        ? undefined
        : bundle.ostreeRepo.setRef(options.targetName, commit),
      verifyExportContent(
        { ...bundle, tufDir: nextTuf },
        verified,
        readBack,
        plan.base === undefined
          ? undefined
          : {
              ostreeRepo: baseScratch === undefined ? repo.ostree.path : path.join(baseScratch, 'repo'),
              hasLayer: (digest) => repo.apps.blobs.has(digest),
            },
        // Only a read-back checks bytes: without it there is nothing to show.
        readBack ? options.progress : undefined,
      ),
    ]);
    for (const outcome of checked) if (outcome.status === 'rejected') throw outcome.reason;
    // ostree and the blob copies wrote without syncing each file: the media is flushed once, here, before the
    // bundle counts as written. A scratch tree is not the media; its archive is flushed when it is packed.
    if (!tree.scratchTree)
      await flushMedia(
        tree.destination,
        media,
        plan.rootfs === 'static-delta'
          ? path.join(tree.destination, staticDeltaName(commit))
          : path.join(bundle.ostreeRepo.path, 'config'),
      );
    if (previous !== undefined) await swapDirectory(nextTuf, bundle.tufDir);
    return {
      result: {
        target: options.targetName,
        targets: plan.names,
        commit,
        expires: plan.expires,
        destination: tree.destination,
        rootVersions,
        offlineSignaturesMissing: verified.bundle.offlineSignaturesMissing,
      },
      release,
    };
  } catch (error) {
    // Leave no half-written bundle behind for someone to carry to a device; an existing one keeps its metadata.
    if (previous === undefined) await removeContents(tree.destination);
    else await fs.rm(nextTuf, { recursive: true, force: true });
    throw writeFailure(error, media, tree.destination);
  } finally {
    if (baseScratch !== undefined) await fs.rm(baseScratch, { recursive: true, force: true });
  }
}

/**
 * The rootfs and the apps of the plan's target, copied at the same time; for a delta, without what the base has.
 * `rootfs` settles with the static delta's signed entry once it is written (at once, undefined, for ostree_repo/);
 * `copies` are every copy, the rootfs's among them.
 */
function copyContent(
  repo: FactoryRepo,
  bundle: BundleDir,
  plan: ExportPlan,
  context: { media: MediaFilesystem | undefined; scratchTree: boolean; baseScratch: string | undefined },
): { rootfs: Promise<StaticDeltaRootfs | undefined>; copies: Promise<void>[] } {
  const { options, base } = plan;
  const target = { name: options.targetName, commit: plan.commit };
  const staticDelta =
    plan.rootfs === 'static-delta'
      ? writeStaticDelta(repo, bundle, target, {
          media: context.media,
          progress: options.progress,
          scratchTree: context.scratchTree,
          base,
        })
      : undefined;
  const rootfs =
    staticDelta?.then(() => undefined) ??
    copyRootfs(repo, bundle, target, {
      newRepo: plan.previous === undefined,
      media: context.media,
      progress: options.progress,
      scratchTree: context.scratchTree,
      base: base === undefined ? undefined : { commit: base.commit, scratch: context.baseScratch! },
    });
  const skipLayers =
    base === undefined ? Promise.resolve(new Set<string>()) : baseLayers(repo, base.target, plan.targets[base.target]!);
  const apps = skipLayers.then((skip) =>
    copyApps(
      repo,
      bundle,
      { name: options.targetName, entry: plan.entry },
      {
        media: context.media,
        progress: options.progress,
        skipLayers: skip,
        layout: plan.format === 'fioctl' ? 'foundries' : 'ferry',
      },
    ),
  );
  // ostree_repo/ needs no entry: its metadata is signed while the objects are copied.
  return { rootfs: staticDelta ?? Promise.resolve(undefined), copies: [rootfs, apps] };
}

/**
 * The entry a --tuf-only refresh signs for the static delta the bundle carries: its length and SHA-256 measured now,
 * not taken from the old metadata, which is not verified here. The check after signing applies the file on top of
 * the base and compares the commit it writes with the factory's target: a file that does not is never signed.
 */
async function keptStaticDelta(bundle: BundleDir, plan: ExportPlan): Promise<StaticDeltaRootfs | undefined> {
  const kept = plan.previous?.staticDelta;
  if (kept === undefined) return undefined;
  const file = staticDeltaName(plan.commit);
  if (kept.file !== file)
    throw new FerryError(
      'EXPORT_VERIFY_FAILED',
      `the bundle names ${kept.file} as its rootfs, not ${file} of target "${plan.options.targetName}"`,
    );
  const digest = await fileDigest(path.join(bundle.root, ...file.split('/'))).catch((error: unknown) => {
    throw new FerryError('EXPORT_VERIFY_FAILED', `${file}: ${describeCause(error)}`, { cause: error });
  });
  return {
    form: 'static-delta',
    file,
    ...digest,
    ...(plan.base === undefined ? {} : { from: plan.base.commit }),
  };
}

/**
 * Writes the bundle's tuf/: the factory's root versions, targets, snapshot and timestamp re-signed to the plan's
 * expiry, and bundle-targets.json naming what the stick carries. Returns how many root versions it holds and the
 * release it signed, which the factory records only once the export succeeded.
 */
async function signBundleMetadata(
  repo: FactoryRepo,
  tufDir: string,
  plan: ExportPlan,
  staticDelta: StaticDeltaRootfs | undefined,
): Promise<{ rootVersions: number; release: SignedRelease }> {
  const rootFiles = await repo.rootFiles();
  for (const file of rootFiles) await fs.copyFile(file, path.join(tufDir, path.basename(file)));
  const release = await repo.signRelease(plan.targets, plan.expires);
  const { format } = plan;
  await fs.writeFile(path.join(tufDir, 'targets.json'), serializeIn(format, release.targets));
  await fs.writeFile(path.join(tufDir, 'snapshot.json'), serializeIn(format, release.snapshot));
  await fs.writeFile(path.join(tufDir, 'timestamp.json'), serializeIn(format, release.timestamp));

  const targetsKeys = await repo.keys.load('targets');
  const base = plan.base === undefined ? {} : { base: plan.base };
  const bundleTargets =
    format === 'fioctl'
      ? // fioctl's bundle-targets.json: a Targets-typed document whose x-fio-offline-bundle names one tag.
        signFioDocument(
          {
            _type: 'Targets',
            expires: plan.expires,
            version: plan.bundleVersion,
            'x-fio-offline-bundle': { type: plan.options.type, tag: plan.tags[0]!, targets: [...plan.names], ...base },
          },
          targetsKeys,
        )
      : signBundleTargets(
          {
            _type: 'bundle',
            expires: plan.expires,
            version: plan.bundleVersion,
            'x-ferry-bundle': {
              type: plan.options.type,
              tag: plan.tags[0]!,
              ...(plan.tags.length > 1 ? { tags: [...plan.tags] } : {}),
              targets: [...plan.names],
              ...base,
              ...(staticDelta === undefined ? {} : { rootfs: staticDelta }),
              // Signed with the rest: devices without a working clock take it as a lower bound for the time.
              signedAt: formatExpires(plan.now),
            },
          },
          targetsKeys,
        );
  await fs.writeFile(path.join(tufDir, BUNDLE_TARGETS_FILE), serializeIn(format, bundleTargets));
  return { rootVersions: rootFiles.length, release };
}

/** Replaces `dir` with `next`: the old one is renamed away first, then removed, so a reader never sees a mix. */
async function swapDirectory(next: string, dir: string): Promise<void> {
  const old = `${dir}.old`;
  await fs.rm(old, { recursive: true, force: true });
  await fs.rename(dir, old);
  await fs.rename(next, dir);
  await fs.rm(old, { recursive: true, force: true });
}

async function removeContents(dir: string): Promise<void> {
  for (const name of await fs.readdir(dir).catch(() => [] as string[]))
    await fs.rm(path.join(dir, name), { recursive: true, force: true });
}

/** Verifies the written metadata as a fresh device would: from 1.root.json, through tuf-js. */
export async function verifyExportMetadata(
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
export async function verifyExportContent(
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

export function exportVerifyFailed(error: unknown, what = 'the written bundle'): FerryError {
  if (error instanceof FerryError && error.outcome === 'EXPORT_VERIFY_FAILED') return error;
  return new FerryError('EXPORT_VERIFY_FAILED', `${what} failed verification: ${describeCause(error)}`, {
    cause: error,
  });
}

/** Makes what was written to the media durable: one flush of its filesystem (see writeBundleTree). */
export async function flushMedia(target: string, media: MediaFilesystem | undefined, written: string): Promise<void> {
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

/**
 * Writes a single-file bundle: `write` fills `<destination>.partial`, which is then flushed and renamed into place,
 * so that the media never holds a half-written file under the bundle's name; a failure removes the partial file.
 */
export async function writeMediaFile(
  destination: string,
  media: MediaFilesystem | undefined,
  write: (partial: string) => Promise<void>,
): Promise<void> {
  const partial = `${destination}.partial`;
  try {
    await write(partial);
    await flushMedia(partial, media, partial);
    await fs.rename(partial, destination);
    await syncDirectory(path.dirname(destination));
  } catch (error) {
    await fs.rm(partial, { force: true });
    throw writeFailure(error, media, path.dirname(destination));
  }
}

/** A full disk is the operator's to fix, not a bug: it gets its own code. Anything else unforeseen is a bug. */
export function writeFailure(error: unknown, media: MediaFilesystem | undefined, where: string): FerryError {
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
