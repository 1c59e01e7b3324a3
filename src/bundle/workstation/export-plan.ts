import type { X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { FerryError, describeCause } from '../../errors.js';
import type { FactoryRepo } from '../../repo/factory-repo.js';
import { isEmptyOrMissingDir, pathExists } from '../../util/atomic-file.js';
import { BUNDLE_TARGETS_FILE, type BundleType } from '../../tuf/bundle-targets.js';
import { expiresInDays, parseExpires } from '../../tuf/expires.js';
import type { ProgressListener } from '../../progress.js';
import type { FilesystemProbe, MediaFilesystem } from '../../util/media-filesystem.js';
import type { MetadataFormat } from '../../repo/metadata-format.js';

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
  /** The TUF format of the stick; it must be the factory's (the default), whose keys and metadata follow it. */
  readonly format?: MetadataFormat | undefined;
  /**
   * Certificate files of the recipients (devices, fleets): the bundle is written as one encrypted file that only
   * their keys open (src/bundle/format/encrypted-bundle.ts). Implies a tar archive.
   */
  readonly encryptTo?: readonly string[] | undefined;
  /**
   * How the rootfs travels: ostree_repo/, an archive repo of its objects (the default, the fioctl layout), or
   * static-delta, one self-contained `ostree static-delta` file under rootfs/ (fewer, larger files for FAT media).
   */
  readonly rootfs?: RootfsForm | undefined;
  readonly now?: Date;
  /** Tells the filesystem of the media (tests stand in for a FAT32 stick with it). */
  readonly filesystemProbe?: FilesystemProbe | undefined;
}

export const ROOTFS_FORMS = ['ostree-repo', 'static-delta'] as const;
export type RootfsForm = (typeof ROOTFS_FORMS)[number];

export type FactoryTargets = Awaited<ReturnType<FactoryRepo['targets']>>;
export type FactoryTarget = FactoryTargets[string];

/** What a bundle already on the stick says it carries. */
export interface ExistingBundle {
  readonly format: MetadataFormat;
  readonly type: BundleType;
  readonly tags: readonly string[];
  readonly targets: readonly string[];
  /**
   * A static-delta bundle's delta file and the base it starts from, as its bundle-targets.json names them: a --tuf-only
   * refresh keeps them, once the file is seen to write the target's commit (see writeBundleTree).
   */
  readonly staticDelta?: { readonly file: string; readonly base: { target: string; commit: string } | undefined };
}

/**
 * Everything an export decided before it writes a byte: what goes on the stick, under which metadata, and the
 * bundle version it signs. Applying it may still fail on the media (59, 61, 71); it is never refused.
 */
export interface ExportPlan {
  readonly options: ExportOptions;
  readonly mode: 'new' | 'add-target' | 'tuf-only';
  /** The factory's TUF format, which the whole stick is written in. */
  readonly format: MetadataFormat;
  /** How the rootfs travels on the stick. */
  readonly rootfs: RootfsForm;
  /** The checked certificates of an encrypted bundle's recipients. */
  readonly recipients: readonly X509Certificate[] | undefined;
  readonly now: Date;
  readonly media: MediaFilesystem;
  readonly targets: FactoryTargets;
  readonly entry: FactoryTarget;
  readonly commit: string;
  readonly expires: string;
  /** The bundle already at the destination (add-target, tuf-only); undefined for a new one. */
  readonly previous: ExistingBundle | undefined;
  /** The base of a delta bundle. */
  readonly base: { readonly target: string; readonly commit: string } | undefined;
  /** Every target and tag the bundle names once written. */
  readonly names: readonly string[];
  readonly tags: readonly string[];
  /** The version of the bundle-targets.json this export signs; the factory records it once the export succeeded. */
  readonly bundleVersion: number;
}

/**
 * Every check that can refuse an export, before anything is written: the options, the factory's target and its
 * content, the root's expiry, and what the destination holds. Only reads.
 */
export async function planExport(
  repo: FactoryRepo,
  options: ExportOptions,
  media: MediaFilesystem,
): Promise<ExportPlan> {
  const now = options.now ?? new Date();
  const mode = options.mode ?? 'new';
  if (options.archive !== undefined) {
    if (mode !== 'new')
      throw new FerryError(
        'USAGE',
        '--allow-multiple-targets and --tuf-only work on a bundle directory: change it, then pack it with --archive',
      );
    if (await pathExists(options.destination))
      throw new FerryError('DESTINATION_NOT_EMPTY', `${options.destination} already exists; export into a new file`);
  }
  if (!Number.isInteger(options.expiresInDays) || options.expiresInDays < 1) {
    throw new FerryError(
      'USAGE',
      `--expires-in-days must be a whole number of days, at least 1 (got ${options.expiresInDays})`,
    );
  }

  const format = await repo.metadataFormat();
  if (options.format !== undefined && options.format !== format)
    throw new FerryError(
      'METADATA_FORMAT_MISMATCH',
      `this factory signs in the ${format} format; a ${options.format}-format stick needs a factory made with \`ferry repo init --format ${options.format}\``,
    );
  if (options.encryptTo !== undefined && format === 'fioctl')
    throw new FerryError(
      'METADATA_FORMAT_MISMATCH',
      'an encrypted bundle is a ferry-format bundle: a fioctl-format stick is read by aktualizr-lite, which decrypts nothing',
    );
  const rootfs = options.rootfs ?? 'ostree-repo';
  if (rootfs === 'static-delta' && format === 'fioctl')
    throw new FerryError(
      'METADATA_FORMAT_MISMATCH',
      'a fioctl-format stick carries its rootfs as ostree_repo/, the layout aktualizr-lite reads: --rootfs static-delta is for ferry-format bundles',
    );
  if (rootfs === 'static-delta' && mode !== 'new')
    throw new FerryError(
      'USAGE',
      '--rootfs static-delta writes a new bundle with one target: it does not add to one (--allow-multiple-targets) or refresh one (--tuf-only)',
    );
  if (options.encryptTo !== undefined && options.archive !== 'tar')
    throw new FerryError('USAGE', '--encrypt-to writes one tar file: it takes no --archive zip');
  if (options.encryptTo !== undefined && options.readBack === true)
    throw new FerryError(
      'USAGE',
      "--read-back decrypts what it reads, which takes a recipient's key: check the written file with `ferry verify <file> --decryption-key <key>`",
    );
  // Every recipient is checked (issued by the factory's device CA, valid, not revoked, a P-256 key) before a byte is
  // written.
  const recipients =
    options.encryptTo === undefined
      ? undefined
      : await (await import('../../ca/recipients.js')).checkRecipientCertificates(repo.dir, options.encryptTo, now);
  const targets = await repo.targets();
  const entry = taggedTarget(targets, options);
  const expires = expiresInDays(now, options.expiresInDays);
  const root = await repo.readRole('root');
  const rootExpires = parseExpires(root.signed['expires']);
  if (rootExpires === undefined || rootExpires.getTime() < new Date(expires).getTime()) {
    throw new FerryError(
      'EXPIRY_TOO_LATE',
      `the bundle would expire at ${expires}, after root.json version ${String(root.signed['version'])} (expires ${String(root.signed['expires'])}); choose fewer --expires-in-days`,
    );
  }
  // An archive's tree is built in a new scratch directory: there is never a bundle there to add to.
  const previous = options.archive === undefined ? await destinationBundle(options, mode) : undefined;
  if (previous !== undefined && previous.format !== format)
    throw new FerryError(
      'METADATA_FORMAT_MISMATCH',
      `${options.destination} holds a ${previous.format}-format bundle; this factory signs in the ${format} format`,
    );
  if (mode === 'add-target' && previous?.staticDelta !== undefined)
    throw new FerryError(
      'USAGE',
      `${options.destination} carries its rootfs as one static delta, for one target: export the other target to a bundle of its own`,
    );
  const commit = entry.hashes['sha256'] ?? '';
  if (!(await repo.ostree.hasCommitObject(commit))) {
    throw new FerryError(
      'REPO_INVALID',
      `the factory OSTree repo lacks commit ${commit} of target "${options.targetName}"`,
    );
  }
  if (options.fromTarget !== undefined && mode !== 'new')
    throw new FerryError('USAGE', '--from makes a new delta bundle: it does not add to one');
  const base =
    options.fromTarget === undefined
      ? // A refreshed static-delta bundle keeps the base its delta starts from.
        mode === 'tuf-only'
        ? previous?.staticDelta?.base
        : undefined
      : await baseOf(repo, targets, options.fromTarget);
  const names = [...new Set([...(previous?.targets ?? []), options.targetName])];
  for (const name of names) {
    if (targets[name] === undefined)
      throw new FerryError('TARGET_UNKNOWN', `the bundle carries "${name}", which the repository no longer has`);
  }
  const tags = [...new Set([...(previous?.tags ?? []), options.tag])];
  // fioctl's x-fio-offline-bundle names one tag, and aklite-offline reads no other: a stick for two tags would
  // offer one of them targets its devices do not follow.
  if (format === 'fioctl' && tags.length > 1)
    throw new FerryError(
      'METADATA_FORMAT_MISMATCH',
      `a fioctl-format bundle is for one tag; ${options.destination} is for "${tags[0]}", not "${options.tag}"`,
    );
  return {
    options,
    mode,
    format,
    rootfs: mode === 'tuf-only' && previous?.staticDelta !== undefined ? 'static-delta' : rootfs,
    recipients,
    now,
    media,
    targets,
    entry,
    commit,
    expires,
    previous,
    base,
    names,
    tags,
    bundleVersion: (await repo.settings()).bundleVersion + 1,
  };
}

/** The factory's entry for the target to export, which must carry the tag the bundle is for. */
function taggedTarget(targets: FactoryTargets, options: ExportOptions): FactoryTarget {
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
  return entry;
}

/** What the destination directory holds, against what the mode asks of it. Adding to an empty directory is new. */
async function destinationBundle(
  options: ExportOptions,
  mode: ExportPlan['mode'],
): Promise<ExistingBundle | undefined> {
  const empty = await isEmptyOrMissingDir(options.destination);
  if (mode === 'new' && !empty) {
    throw new FerryError(
      'DESTINATION_NOT_EMPTY',
      `${options.destination} is not empty; export into a new or empty directory (or add to a bundle with --allow-multiple-targets)`,
    );
  }
  if (mode === 'tuf-only' && empty)
    throw new FerryError('BUNDLE_UNREADABLE', `${options.destination} holds no bundle whose tuf/ could be refreshed`);
  if (empty) return undefined;
  const previous = await existingBundle(options.destination);
  if (previous.type !== options.type) {
    throw new FerryError(
      'BUNDLE_TYPE_MISMATCH',
      `${options.destination} is a "${previous.type}" bundle; a "${options.type}" export cannot be added to it`,
    );
  }
  if (mode === 'tuf-only' && !previous.targets.includes(options.targetName)) {
    throw new FerryError(
      'TARGET_UNKNOWN',
      `the bundle carries ${previous.targets.join(', ')}, not "${options.targetName}"; --tuf-only refreshes the metadata of what it carries`,
    );
  }
  return previous;
}

/** What an existing bundle says it carries: read from our own stick, and checked again by the verification after. */
async function existingBundle(destination: string): Promise<ExistingBundle> {
  type BundleInfo = {
    type?: unknown;
    tag?: unknown;
    tags?: unknown;
    targets?: unknown;
    base?: { target?: unknown; commit?: unknown };
    rootfs?: { form?: unknown; file?: unknown };
  };
  let document: { signed?: { 'x-ferry-bundle'?: BundleInfo; 'x-fio-offline-bundle'?: BundleInfo } };
  try {
    document = JSON.parse(await fs.readFile(path.join(destination, 'tuf', BUNDLE_TARGETS_FILE), 'utf8'));
  } catch (error) {
    throw new FerryError(
      'BUNDLE_UNREADABLE',
      `${destination} is not a bundle this command can add to: ${describeCause(error)}`,
      { cause: error },
    );
  }
  // fioctl's bundle-targets.json names what it carries in x-fio-offline-bundle.
  const fio = document.signed?.['x-fio-offline-bundle'];
  const info = fio ?? document.signed?.['x-ferry-bundle'] ?? {};
  const strings = (value: unknown) =>
    Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : [];
  if ((info.type !== 'ci' && info.type !== 'prod') || typeof info.tag !== 'string')
    throw new FerryError('BUNDLE_UNREADABLE', `${destination}/tuf/${BUNDLE_TARGETS_FILE} has no type and tag`);
  const tags = strings(info.tags);
  const base =
    typeof info.base?.target === 'string' && typeof info.base.commit === 'string'
      ? { target: info.base.target, commit: info.base.commit }
      : undefined;
  return {
    format: fio === undefined ? 'ferry' : 'fioctl',
    type: info.type,
    tags: tags.length > 0 ? tags : [info.tag],
    targets: strings(info.targets),
    ...(info.rootfs?.form === 'static-delta' && typeof info.rootfs.file === 'string'
      ? { staticDelta: { file: info.rootfs.file, base } }
      : {}),
  };
}

async function baseOf(
  repo: FactoryRepo,
  targets: FactoryTargets,
  name: string,
): Promise<{ target: string; commit: string }> {
  const entry = targets[name];
  if (entry === undefined) throw new FerryError('TARGET_UNKNOWN', `the repository has no base target "${name}"`);
  const commit = entry.hashes['sha256'] ?? '';
  if (!(await repo.ostree.hasCommitObject(commit)))
    throw new FerryError('REPO_INVALID', `the factory OSTree repo lacks commit ${commit} of "${name}"`);
  return { target: name, commit };
}
