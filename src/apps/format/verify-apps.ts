import { promises as fs } from 'node:fs';
import { FerryError, describeCause } from '../../errors.js';
import type { AppPin } from '../../tuf/target.js';
import { readSmallFile } from '../../util/atomic-file.js';
import { parseAppManifest, type AppManifest } from './app-manifest.js';
import type { AppsDir } from './apps-dir.js';
import { readComposeArchive, COMPOSE_ARCHIVE_LIMITS, type ProjectFile } from './compose-archive.js';
import { parseCompose, pinnedImages } from './compose.js';
import { digestOf, hexOf, type Descriptor } from './digest.js';
import { formatImageRef, type ImageRef } from './image-ref.js';
import { parseImageManifest, parseIndex } from './oci-layout.js';

const MAX_JSON = 4 * 1024 * 1024;

export interface VerifiedImage {
  readonly ref: ImageRef & { digest: string };
  readonly manifest: Descriptor;
  /** The manifest, config and layers: every blob the image needs, with the sizes the verified manifest gives. */
  readonly blobs: readonly Descriptor[];
}

export interface VerifiedApp {
  readonly name: string;
  readonly pin: AppPin;
  readonly manifestBytes: Buffer;
  readonly manifest: AppManifest;
  readonly archive: Buffer;
  readonly files: readonly ProjectFile[];
  readonly compose: string;
  readonly images: readonly VerifiedImage[];
}

async function readOrMissing(file: string, label: string, maxBytes: number): Promise<Buffer> {
  try {
    return await readSmallFile(file, maxBytes);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT')
      throw new FerryError('CONTENT_MISSING', `${label} is missing from the bundle`);
    throw new FerryError('APP_CONTENT_INVALID', `${label}: ${describeCause(error)}`, { cause: error });
  }
}

/**
 * Follows the digest chain from the signed target down to every image blob (reference §1, §2): app uri digest →
 * manifest.json → compose archive and image manifests → configs and layers. Everything small is read and hashed
 * here; the layers are only checked for presence and size, and are hashed while they are copied (stageApps), so
 * each byte of the stick is read once. Apps the target does not name are never looked at.
 */
export async function verifyApps(
  apps: AppsDir,
  pins: Readonly<Record<string, AppPin>>,
  where = 'apps/',
  /** For a delta bundle: a layer missing here is fine if this says it is there already (the device's store). */
  layerElsewhere?: (digest: string) => Promise<boolean>,
): Promise<VerifiedApp[]> {
  const verified: VerifiedApp[] = [];
  for (const [name, pin] of Object.entries(pins)) {
    const label = `${where}${name}/${hexOf(pin.digest).slice(0, 12)}`;
    const manifestBytes = await readOrMissing(apps.manifestFile(name, pin.digest), `${label}/manifest.json`, MAX_JSON);
    if (digestOf(manifestBytes) !== pin.digest) {
      throw new FerryError(
        'APP_MANIFEST_MISMATCH',
        `${label}/manifest.json hashes to ${digestOf(manifestBytes)}, the signed target pins ${pin.digest}`,
      );
    }
    let manifest: AppManifest;
    try {
      manifest = parseAppManifest(JSON.parse(manifestBytes.toString('utf8')), name);
    } catch (error) {
      throw new FerryError('APP_CONTENT_INVALID', `${label}/manifest.json: ${describeCause(error)}`, { cause: error });
    }
    const archiveDescriptor = manifest.archive;
    const archiveLabel = `${label}/${hexOf(archiveDescriptor.digest)}.tgz`;
    const archive = await readOrMissing(
      apps.archiveFile(name, pin.digest, archiveDescriptor.digest),
      archiveLabel,
      COMPOSE_ARCHIVE_LIMITS.maxArchiveBytes,
    );
    if (digestOf(archive) !== archiveDescriptor.digest || archive.length !== archiveDescriptor.size) {
      throw new FerryError(
        'COMPOSE_ARCHIVE_MISMATCH',
        `${archiveLabel} hashes to ${digestOf(archive)} (${archive.length} bytes); the app manifest says ${archiveDescriptor.digest} (${archiveDescriptor.size} bytes)`,
      );
    }
    let files: ProjectFile[];
    let compose: string;
    let pinned;
    try {
      ({ files, compose } = await readComposeArchive(archive));
      pinned = pinnedImages(parseCompose(compose));
    } catch (error) {
      throw new FerryError('APP_CONTENT_INVALID', `${archiveLabel}: ${describeCause(error)}`, { cause: error });
    }
    // The ferry form lists the image manifests it pins and must list exactly those the services use; the
    // compose-app form leaves them to the compose file, whose digests the signed archive carries.
    const listed = manifest.images && new Map(manifest.images.map((image) => [image.ref, image.manifest]));
    const images: VerifiedImage[] = [];
    for (const image of pinned) {
      const text = formatImageRef({ host: image.host, path: image.path, digest: image.digest });
      const descriptor = listed?.get(text);
      if (listed !== undefined && (descriptor === undefined || descriptor.digest !== image.digest)) {
        throw new FerryError(
          'APP_CONTENT_INVALID',
          `${label}: service "${image.service}" uses ${text}, which the app manifest does not list`,
        );
      }
      if (images.some((known) => known.manifest.digest === image.digest)) continue;
      images.push(await verifyImage(apps, name, pin, image, descriptor, label, layerElsewhere));
    }
    if (manifest.images && images.length !== new Set(manifest.images.map((image) => image.manifest.digest)).size) {
      throw new FerryError('APP_CONTENT_INVALID', `${label}: the app manifest lists images that no service uses`);
    }
    verified.push({ name, pin, manifestBytes, manifest, archive, files, compose, images });
  }
  return verified;
}

async function verifyImage(
  apps: AppsDir,
  app: string,
  pin: AppPin,
  image: ImageRef & { digest: string },
  /** The descriptor the app manifest lists, if its form lists one; else index.json's, checked by digest. */
  listed: Descriptor | undefined,
  label: string,
  layerElsewhere?: (digest: string) => Promise<boolean>,
): Promise<VerifiedImage> {
  const imageLabel = `${label}/images/${image.host}/${image.path}/${hexOf(image.digest).slice(0, 12)}`;
  const indexBytes = await readOrMissing(
    `${apps.imageDir(app, pin.digest, image)}/index.json`,
    `${imageLabel}/index.json`,
    MAX_JSON,
  );
  let index;
  try {
    index = parseIndex(JSON.parse(indexBytes.toString('utf8')));
  } catch (error) {
    throw new FerryError('APP_CONTENT_INVALID', `${imageLabel}/index.json: ${describeCause(error)}`, { cause: error });
  }
  if (index.manifests.length !== 1 || index.manifests[0]!.digest !== image.digest) {
    throw new FerryError('IMAGE_MANIFEST_MISMATCH', `${imageLabel}/index.json does not name manifest ${image.digest}`);
  }
  const descriptor = listed ?? index.manifests[0]!;
  const manifestLabel = `${label}: blobs/sha256/${hexOf(image.digest).slice(0, 12)} (manifest of ${image.path})`;
  const manifestBytes = await readOrMissing(apps.blobs.pathOf(image.digest), manifestLabel, MAX_JSON);
  if (digestOf(manifestBytes) !== image.digest || manifestBytes.length !== descriptor.size) {
    throw new FerryError(
      'IMAGE_MANIFEST_MISMATCH',
      `${manifestLabel} hashes to ${digestOf(manifestBytes)}, expected ${image.digest}`,
    );
  }
  let manifest;
  try {
    manifest = parseImageManifest(JSON.parse(manifestBytes.toString('utf8')));
  } catch (error) {
    throw new FerryError('APP_CONTENT_INVALID', `${manifestLabel}: ${describeCause(error)}`, { cause: error });
  }
  const configLabel = `${label}: blobs/sha256/${hexOf(manifest.config.digest).slice(0, 12)} (config of ${image.path})`;
  const config = await readOrMissing(apps.blobs.pathOf(manifest.config.digest), configLabel, MAX_JSON);
  if (digestOf(config) !== manifest.config.digest || config.length !== manifest.config.size) {
    throw new FerryError(
      'IMAGE_MANIFEST_MISMATCH',
      `${configLabel} hashes to ${digestOf(config)}, expected ${manifest.config.digest}`,
    );
  }
  for (const layer of manifest.layers) {
    const layerLabel = `${label}: blobs/sha256/${hexOf(layer.digest).slice(0, 12)} (layer of ${image.path})`;
    let size: number;
    try {
      size = (await fs.stat(apps.blobs.pathOf(layer.digest))).size;
    } catch {
      if (layerElsewhere !== undefined && (await layerElsewhere(layer.digest))) continue;
      throw new FerryError('CONTENT_MISSING', `${layerLabel} is missing from the bundle`);
    }
    if (size !== layer.size)
      throw new FerryError('BLOB_MISMATCH', `${layerLabel} is ${size} bytes, the manifest says ${layer.size}`);
  }
  return { ref: image, manifest: descriptor, blobs: [descriptor, manifest.config, ...manifest.layers] };
}
