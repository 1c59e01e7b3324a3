import { isDescriptor, MEDIA, type Descriptor } from './digest.js';

/**
 * The app manifest: an OCI manifest whose one layer is the compose project archive, plus the descriptors of the
 * image manifests the compose file pins. Its SHA-256 is the digest the target's app uri ends with, so the signed
 * target reaches every byte of the app through it.
 */
export interface AppManifest {
  readonly schemaVersion: 2;
  readonly mediaType: typeof MEDIA.ociManifest;
  readonly config: Descriptor;
  readonly layers: readonly [Descriptor];
  readonly annotations: { readonly 'org.ferry.app.name': string };
  readonly images: ReadonlyArray<{ readonly ref: string; readonly manifest: Descriptor }>;
}

/** The config blob every app manifest points at: an empty JSON object. */
export const EMPTY_CONFIG = Buffer.from('{}');

export function parseAppManifest(json: unknown, app: string): AppManifest {
  const manifest = json as Partial<AppManifest> | null;
  if (
    typeof manifest !== 'object' ||
    manifest === null ||
    manifest.schemaVersion !== 2 ||
    manifest.mediaType !== MEDIA.ociManifest
  ) {
    throw new Error('not an OCI manifest');
  }
  if (!isDescriptor(manifest.config)) throw new Error('config is not a descriptor');
  if (!Array.isArray(manifest.layers) || manifest.layers.length !== 1 || !isDescriptor(manifest.layers[0])) {
    throw new Error('must have exactly one layer: the compose archive');
  }
  if (manifest.layers[0].mediaType !== MEDIA.appArchive)
    throw new Error(`layer media type is ${manifest.layers[0].mediaType}`);
  if (manifest.annotations?.['org.ferry.app.name'] !== app)
    throw new Error(`names app "${String(manifest.annotations?.['org.ferry.app.name'])}", not "${app}"`);
  if (
    !Array.isArray(manifest.images) ||
    !manifest.images.every((image) => typeof image?.ref === 'string' && isDescriptor(image.manifest))
  ) {
    throw new Error('images must list {ref, manifest descriptor}');
  }
  return manifest as AppManifest;
}
