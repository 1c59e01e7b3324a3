import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { writeFileAtomic } from '../../util/atomic-file.js';
import type { AppsDir } from './apps-dir.js';
import { MEDIA } from './digest.js';
import { renderForEngine, RENDERED_COMPOSE_FILE } from './compose.js';
import { writeImageLayout } from './oci-layout.js';
import type { VerifiedApp } from './verify-apps.js';

/**
 * Copies verified apps from one apps layout to another: every image blob by streaming, hashed on the way (a blob
 * already there is not copied again), then each app's own files from the verified bytes in memory. With
 * `unpackProject`, the compose project is also unpacked, with the compose file rendered for the engine.
 */
export async function copyVerifiedApps(
  source: AppsDir,
  dest: AppsDir,
  apps: readonly VerifiedApp[],
  options: {
    unpackProject: boolean;
    skipBlob?: (digest: string) => Promise<boolean>;
    onProgress?: (bytesCopied: number) => Promise<void>;
  },
): Promise<{ blobsCopied: number; bytesCopied: number }> {
  let blobsCopied = 0;
  let bytesCopied = 0;
  const seen = new Set<string>();
  for (const app of apps) {
    for (const image of app.images) {
      for (const blob of image.blobs) {
        if (seen.has(blob.digest)) continue;
        seen.add(blob.digest);
        if (options.skipBlob && (await options.skipBlob(blob.digest))) continue;
        const isLayer = blob !== image.blobs[0] && blob !== image.blobs[1];
        const copied = await dest.blobs.copyFrom(source.blobs, blob.digest, {
          expectedSize: blob.size,
          mismatch: isLayer ? 'BLOB_MISMATCH' : 'IMAGE_MANIFEST_MISMATCH',
          label: `apps/blobs/sha256/${blob.digest.slice(7, 19)} (${isLayer ? 'layer' : blob.mediaType === MEDIA.ociConfig ? 'config' : 'blob'} of ${image.ref.path})`,
        });
        if (copied) {
          blobsCopied += 1;
          bytesCopied += blob.size;
          await options.onProgress?.(bytesCopied);
        }
      }
    }
    const dir = dest.appDir(app.name, app.pin.digest);
    await fs.mkdir(dir, { recursive: true });
    await writeFileAtomic(dest.manifestFile(app.name, app.pin.digest), app.manifestBytes);
    await writeFileAtomic(dest.uriFile(app.name, app.pin.digest), app.pin.uri);
    await writeFileAtomic(dest.archiveFile(app.name, app.pin.digest, app.manifest.archive.digest), app.archive);
    await writeFileAtomic(dest.composeFile(app.name, app.pin.digest), app.compose);
    if (dest.layout === 'foundries') {
      // aktualizr-lite's offline registry serves every object of an app, its manifest and compose archive too, from
      // the blob store alone (apps/blobs/sha256/<hex>), as composeapp's store keeps them.
      for (const [digest, bytes, what] of [
        [app.pin.digest, app.manifestBytes, 'app manifest'],
        [app.manifest.archive.digest, app.archive, 'compose archive'],
      ] as const) {
        await dest.blobs.put(digest, () => Readable.from([bytes]), {
          expectedSize: bytes.length,
          mismatch: 'INTERNAL_ERROR',
          label: `apps/blobs/sha256/${digest.slice(7, 19)} (${what} of ${app.name})`,
        });
      }
    }
    for (const image of app.images)
      await writeImageLayout(dest.imageDir(app.name, app.pin.digest, image.ref), image.manifest);
    if (options.unpackProject) {
      const project = dest.projectDir(app.name, app.pin.digest);
      for (const file of app.files) {
        const target = path.join(project, file.name);
        await fs.mkdir(path.dirname(target), { recursive: true });
        await writeFileAtomic(target, file.content, file.mode);
      }
      await writeFileAtomic(path.join(project, RENDERED_COMPOSE_FILE), renderForEngine(app.compose));
    }
  }
  return { blobsCopied, bytesCopied };
}
