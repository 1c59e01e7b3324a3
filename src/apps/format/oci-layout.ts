import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../../util/atomic-file.js';
import { isDescriptor, MEDIA, type Descriptor } from './digest.js';

/** The `org.opencontainers.image.ref.name` annotation: ferry puts the full image reference there. */
export const REF_NAME = 'org.opencontainers.image.ref.name';

export interface OciIndex {
  readonly schemaVersion: 2;
  readonly mediaType?: string;
  readonly manifests: readonly Descriptor[];
}

export interface ImageManifest {
  readonly schemaVersion: 2;
  readonly mediaType?: string;
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
  readonly annotations?: Record<string, string>;
}

export function parseIndex(json: unknown): OciIndex {
  const index = json as Partial<OciIndex> | null;
  if (typeof index !== 'object' || index === null || index.schemaVersion !== 2 || !Array.isArray(index.manifests)) {
    throw new Error('not an OCI image index (schemaVersion 2 with manifests)');
  }
  if (!index.manifests.every(isDescriptor)) throw new Error('an entry of manifests is not a valid descriptor');
  return index as OciIndex;
}

export function parseImageManifest(json: unknown): ImageManifest {
  const manifest = json as Partial<ImageManifest> | null;
  if (typeof manifest !== 'object' || manifest === null || manifest.schemaVersion !== 2)
    throw new Error('not an image manifest (schemaVersion 2)');
  if (
    manifest.mediaType !== undefined &&
    manifest.mediaType !== MEDIA.ociManifest &&
    manifest.mediaType !== MEDIA.dockerManifest
  ) {
    throw new Error(`unsupported manifest media type ${manifest.mediaType}`);
  }
  if (!isDescriptor(manifest.config)) throw new Error('config is not a valid descriptor');
  if (!Array.isArray(manifest.layers) || !manifest.layers.every(isDescriptor))
    throw new Error('layers are not valid descriptors');
  return manifest as ImageManifest;
}

/** Writes `oci-layout` and `index.json` for one image into `dir`; its blobs live in a shared blob directory. */
export async function writeImageLayout(dir: string, manifest: Descriptor): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  await writeFileAtomic(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  const index: OciIndex = { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [manifest] };
  await writeFileAtomic(path.join(dir, 'index.json'), JSON.stringify(index));
}
