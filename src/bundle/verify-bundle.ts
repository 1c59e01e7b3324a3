import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AppsDir } from '../apps/apps-dir.js';
import { verifyApps } from '../apps/verify-apps.js';
import { treeBytes } from '../device/free-space.js';
import { FerryError, describeCause } from '../errors.js';
import type { BundleTargets } from '../tuf/bundle-targets.js';
import type { Target } from '../tuf/target.js';
import { discardScratch, verifyBundleMetadata } from '../tuf/verify-metadata.js';
import type { BundleDir } from './bundle-dir.js';
import type { ProgressListener } from '../progress.js';

export interface BundleVerification {
  readonly rootVersion: number;
  readonly bundle: BundleTargets;
  readonly targets: readonly Target[];
  readonly blobsChecked: number;
  readonly sizeBytes: number;
}

/**
 * Checks a whole bundle the way a device would take it, and more: the metadata from `trustedRoot` through every
 * newer root (tuf-js), expiry at `now`, bundle-targets.json against the newest root's targets keys; then every
 * target it names: verifiable, its commit on the stick, every OSTree object sound (fsck), every app along its digest
 * chain and every blob against its digest. Refusals carry the device's own exit codes.
 */
export async function verifyBundle(
  bundle: BundleDir,
  options: {
    readonly trustedRoot: string;
    readonly now?: Date;
    readonly offlineSignatures?: 'require' | 'count';
    /** Bytes of app blobs checked so far, for bars or a dashboard. */
    readonly progress?: ProgressListener | undefined;
  },
): Promise<BundleVerification> {
  const trustedDir = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-verify-'));
  try {
    try {
      await fs.copyFile(options.trustedRoot, path.join(trustedDir, 'root.json'));
    } catch (error) {
      throw new FerryError('USAGE', `cannot read the trusted root ${options.trustedRoot}: ${describeCause(error)}`, {
        cause: error,
      });
    }
    const verified = await verifyBundleMetadata({
      trustedDir,
      bundleTufDir: bundle.tufDir,
      ...(options.now ? { now: options.now } : {}),
      offlineSignatures: options.offlineSignatures ?? 'require',
    });
    await discardScratch(verified);
    if (verified.unusable.length > 0) {
      throw new FerryError(
        'BUNDLE_METADATA_INVALID',
        `bundle-targets.json names targets that do not verify: ${verified.unusable.join('; ')}`,
      );
    }
    for (const target of verified.targets) {
      if (!(await bundle.ostreeRepo.hasCommitObject(target.commit)))
        throw new FerryError(
          'CONTENT_MISSING',
          `ostree_repo/ lacks commit ${target.commit} of target "${target.name}"`,
        );
    }
    try {
      await bundle.ostreeRepo.fsck();
    } catch (error) {
      throw new FerryError('CONTENT_VERIFICATION_FAILED', `ostree_repo/ failed fsck: ${describeCause(error)}`, {
        cause: error,
      });
    }
    const apps = new AppsDir(bundle.appsDir);
    const checked = new Set<string>();
    const toCheck = new Map<string, number>();
    const verifiedApps = [];
    for (const target of verified.targets) {
      for (const app of await verifyApps(apps, target.apps)) {
        verifiedApps.push({ target: target.name, app });
        for (const image of app.images) for (const blob of image.blobs) toCheck.set(blob.digest, blob.size);
      }
    }
    const total = [...toCheck.values()].reduce((sum, size) => sum + size, 0);
    let bytes = 0;
    options.progress?.({ phase: 'verify', bytes, total });
    for (const { target, app } of verifiedApps) {
      for (const image of app.images) {
        for (const blob of image.blobs) {
          if (checked.has(blob.digest)) continue;
          if (!(await apps.blobs.has(blob.digest)))
            throw new FerryError('CONTENT_MISSING', `apps/blobs/sha256/${blob.digest.slice(7)} is missing`);
          if (!(await apps.blobs.verify(blob.digest, blob.size)))
            throw new FerryError(
              'BLOB_MISMATCH',
              `apps/blobs/sha256/${blob.digest.slice(7)} does not match its digest`,
            );
          checked.add(blob.digest);
          bytes += blob.size;
          options.progress?.({ phase: 'verify', bytes, total, target, app: app.name });
        }
      }
    }
    return {
      rootVersion: verified.rootVersion,
      bundle: verified.bundle,
      targets: verified.targets,
      blobsChecked: checked.size,
      sizeBytes: await treeBytes(bundle.root),
    };
  } finally {
    await fs.rm(trustedDir, { recursive: true, force: true });
  }
}
