import { promises as fs } from 'node:fs';
import { AppsDir, type AppsLayout } from '../../apps/format/apps-dir.js';
import { copyVerifiedApps } from '../../apps/format/copy-apps.js';
import { verifyApps } from '../../apps/format/verify-apps.js';
import { FerryError, describeCause } from '../../errors.js';
import type { ProgressListener } from '../../progress.js';
import type { FactoryRepo } from '../../repo/factory-repo.js';
import { targetFromMetadata, type AppPin } from '../../tuf/target.js';
import { checkFitsMedia, type MediaFilesystem } from '../../util/media-filesystem.js';
import type { BundleDir } from '../format/bundle-dir.js';
import type { FactoryTarget } from './export-plan.js';

/** The apps a factory target pins. */
export function appsOfTarget(name: string, entry: FactoryTarget): Record<string, AppPin> {
  const target = targetFromMetadata(name, entry.hashes, entry.custom ?? {});
  if ('invalid' in target) throw new FerryError('REPO_INVALID', target.invalid);
  return { ...target.apps };
}

/**
 * The target's apps, from the factory's verified digest chain into the bundle's apps/; every blob hashed as it is
 * written. Layers in `skipLayers` (what a delta's base holds) stay out.
 */
export async function copyApps(
  repo: FactoryRepo,
  bundle: BundleDir,
  target: { name: string; entry: FactoryTarget },
  context: {
    media: MediaFilesystem | undefined;
    progress: ProgressListener | undefined;
    skipLayers: ReadonlySet<string>;
    /** Where the stick's format puts the app directories (fioctl's: apps/apps/, beside apps/blobs/). */
    layout: AppsLayout;
  },
): Promise<void> {
  // Flushed once with the rest of the media, not blob by blob.
  const apps = new AppsDir(bundle.appsDir, { syncEachBlob: false }, context.layout);
  const verifiedApps = await verifyApps(repo.apps, appsOfTarget(target.name, target.entry), 'factory apps/').catch(
    (error: unknown) => {
      throw new FerryError('REPO_INVALID', `the factory's apps do not verify: ${describeCause(error)}`, {
        cause: error,
      });
    },
  );
  // Every blob the media's filesystem cannot hold is refused before the first one is written.
  if (context.media !== undefined)
    checkFitsMedia(
      context.media,
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
  const progress = context.progress;
  progress?.({ phase: 'apps', bytes: 0, total: appBytes, target: target.name });
  await copyVerifiedApps(repo.apps, apps, verifiedApps, {
    unpackProject: false,
    skipBlob: async (digest) => context.skipLayers.has(digest),
    ...(progress
      ? {
          onProgress: async (bytes: number) =>
            progress({ phase: 'apps', bytes: Math.min(bytes, appBytes), total: appBytes, target: target.name }),
        }
      : {}),
  });
  progress?.({ phase: 'apps', bytes: appBytes, total: appBytes, target: target.name });
}
