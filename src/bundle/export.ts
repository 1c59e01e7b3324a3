import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FerryError, describeCause } from '../errors.js';
import { OstreeRepo } from '../ostree/ostree-repo.js';
import type { FactoryRepo } from '../repo/factory-repo.js';
import { isEmptyOrMissingDir } from '../util/atomic-file.js';
import { BUNDLE_TARGETS_FILE, signBundleTargets, type BundleType } from '../tuf/bundle-targets.js';
import { expiresInDays, parseExpires } from '../tuf/expires.js';
import { serializeMetadata } from '../tuf/sign-metadata.js';
import { discardScratch, verifyBundleMetadata } from '../tuf/verify-metadata.js';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import yazl from 'yazl';
import { membersOfDirectory, writeTar } from '../apps/tar-pack.js';
import { pathExists } from '../util/atomic-file.js';
import { extractBundleArchive } from './bundle-archive.js';
import { bundleLayout } from './bundle-dir.js';
import { AppsDir } from '../apps/apps-dir.js';
import { copyVerifiedApps } from '../apps/copy-apps.js';
import { verifyApps } from '../apps/verify-apps.js';
import { targetFromMetadata, type AppPin } from '../tuf/target.js';

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
  readonly now?: Date;
}

export interface ExportResult {
  readonly target: string;
  readonly commit: string;
  readonly expires: string;
  readonly destination: string;
  readonly rootVersions: number;
}

/**
 * `export`: writes the bundle layout of reference §1 for one target. All checks that can refuse run before the first
 * byte is written; the finished bundle is then verified the way a device would, from 1.root.json.
 */
export async function exportBundle(repo: FactoryRepo, options: ExportOptions): Promise<ExportResult> {
  if (options.archive === undefined) return exportBundleTree(repo, options);
  if (await pathExists(options.destination)) {
    throw new FerryError('DESTINATION_NOT_EMPTY', `${options.destination} already exists; export into a new file`);
  }
  // The tree is written beside the archive, on the same filesystem, and removed once it is packed.
  const tree = `${options.destination}.tree-${randomBytes(4).toString('hex')}`;
  const verifyDir = `${options.destination}.verify-${randomBytes(4).toString('hex')}`;
  try {
    const result = await exportBundleTree(repo, { ...options, destination: tree });
    const partial = `${options.destination}.partial`;
    await packBundle(tree, partial, options.archive);
    // Verified as a device reads it: unpacked with every member check, then the whole bundle check.
    try {
      await extractBundleArchive(partial, options.archive, verifyDir);
      await verifyExport(repo, verifyDir, options.targetName, result.commit, options.now ?? new Date());
    } catch (error) {
      await fs.rm(partial, { force: true });
      throw error instanceof FerryError && error.outcome === 'EXPORT_VERIFY_FAILED'
        ? error
        : new FerryError(
            'EXPORT_VERIFY_FAILED',
            `the written ${options.archive} failed verification: ${describeCause(error)}`,
            { cause: error },
          );
    }
    await fs.rename(partial, options.destination);
    return { ...result, destination: options.destination };
  } finally {
    await fs.rm(tree, { recursive: true, force: true });
    await fs.rm(verifyDir, { recursive: true, force: true });
  }
}

/** Packs a bundle tree into one file: members in a fixed order, with fixed times and owners. */
async function packBundle(tree: string, file: string, kind: 'tar' | 'zip'): Promise<void> {
  const members = await membersOfDirectory(tree);
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

async function exportBundleTree(repo: FactoryRepo, options: ExportOptions): Promise<ExportResult> {
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
  if (!(await isEmptyOrMissingDir(options.destination))) {
    throw new FerryError(
      'DESTINATION_NOT_EMPTY',
      `${options.destination} is not empty; export into a new or empty directory`,
    );
  }
  const commit = entry.hashes['sha256'] ?? '';
  if (!(await repo.ostree.hasCommitObject(commit))) {
    throw new FerryError(
      'REPO_INVALID',
      `the factory OSTree repo lacks commit ${commit} of target "${options.targetName}"`,
    );
  }

  const bundle = bundleLayout(options.destination);
  await fs.mkdir(bundle.tufDir, { recursive: true });
  try {
    const rootFiles = await repo.rootFiles();
    for (const file of rootFiles) await fs.copyFile(file, path.join(bundle.tufDir, path.basename(file)));
    const published = await repo.publishTargets(targets, expires);
    await fs.writeFile(path.join(bundle.tufDir, 'targets.json'), serializeMetadata(published.targets));
    await fs.writeFile(path.join(bundle.tufDir, 'snapshot.json'), serializeMetadata(published.snapshot));
    await fs.writeFile(path.join(bundle.tufDir, 'timestamp.json'), serializeMetadata(published.timestamp));

    const settings = await repo.settings();
    const bundleVersion = settings.bundleVersion + 1;
    await repo.saveSettings({ ...settings, bundleVersion });
    const bundleTargets = signBundleTargets(
      {
        _type: 'bundle',
        expires,
        version: bundleVersion,
        'x-ferry-bundle': { type: options.type, tag: options.tag, targets: [options.targetName] },
      },
      await repo.keys.load('targets'),
    );
    await fs.writeFile(path.join(bundle.tufDir, BUNDLE_TARGETS_FILE), serializeMetadata(bundleTargets));

    await OstreeRepo.create(bundle.ostreeRepo.path, 'archive');
    await bundle.ostreeRepo.pullLocal(repo.ostree.path, commit, { untrusted: false });
    await bundle.ostreeRepo.setRef(options.targetName, commit);
    // On the same filesystem ostree hard-links objects: the stick must never share an inode with the factory.
    await unshareHardLinks(path.join(bundle.ostreeRepo.path, 'objects'));

    const apps = new AppsDir(bundle.appsDir);
    await fs.mkdir(apps.root, { recursive: true });
    const verifiedApps = await verifyApps(repo.apps, appsOf(options.targetName, entry), 'factory apps/').catch(
      (error: unknown) => {
        throw new FerryError('REPO_INVALID', `the factory's apps do not verify: ${describeCause(error)}`, {
          cause: error,
        });
      },
    );
    await copyVerifiedApps(repo.apps, apps, verifiedApps, { unpackProject: false });

    await verifyExport(repo, options.destination, options.targetName, commit, now);
    return {
      target: options.targetName,
      commit,
      expires,
      destination: options.destination,
      rootVersions: rootFiles.length,
    };
  } catch (error) {
    // Leave no half-written bundle behind for someone to carry to a device.
    await removeContents(options.destination);
    if (error instanceof FerryError) throw error;
    throw new FerryError('INTERNAL_ERROR', `export failed: ${describeCause(error)}`, { cause: error });
  }
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

/** Verifies the written bundle as a fresh device would: from 1.root.json, through tuf-js, then every OSTree object. */
async function verifyExport(
  repo: FactoryRepo,
  destination: string,
  targetName: string,
  commit: string,
  now: Date,
): Promise<void> {
  const trustedDir = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-export-verify-'));
  try {
    const firstRoot = (await repo.rootFiles())[0]!;
    await fs.copyFile(firstRoot, path.join(trustedDir, 'root.json'));
    const bundle = bundleLayout(destination);
    const verified = await verifyBundleMetadata({ trustedDir, bundleTufDir: bundle.tufDir, now });
    await discardScratch(verified);
    const target = verified.targets.find((candidate) => candidate.name === targetName);
    if (target === undefined || target.commit !== commit)
      throw new Error(`target "${targetName}" is not verifiable in the written metadata`);
    if (!(await bundle.ostreeRepo.hasCommitObject(commit))) throw new Error(`ostree_repo/ lacks commit ${commit}`);
    await bundle.ostreeRepo.fsck();
    const apps = new AppsDir(bundle.appsDir);
    for (const app of await verifyApps(apps, target.apps)) {
      for (const image of app.images) {
        for (const blob of image.blobs) {
          if (!(await apps.blobs.verify(blob.digest, blob.size)))
            throw new Error(`apps/blobs/sha256/${blob.digest.slice(7)} does not match its digest`);
        }
      }
    }
  } catch (error) {
    throw new FerryError('EXPORT_VERIFY_FAILED', `the written bundle failed verification: ${describeCause(error)}`, {
      cause: error,
    });
  } finally {
    await fs.rm(trustedDir, { recursive: true, force: true });
  }
}
