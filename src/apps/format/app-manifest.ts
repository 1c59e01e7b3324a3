import { isDescriptor, MEDIA, type Descriptor } from './digest.js';

/**
 * The app manifest: an OCI manifest whose first layer is the compose project archive. Its SHA-256 is the digest the
 * target's app uri ends with, so the signed target reaches every byte of the app through it. It comes in two forms:
 *
 * - `ferry`: annotated with the app's name, and listing the descriptors of the image manifests the compose file pins
 *   (`images`), so a reader learns every image's size from signed bytes.
 * - `compose-app`: as Foundries' compose-publish writes it and aktualizr-lite requires it (annotation
 *   `compose-app: v1`, the archive as `layers[0]`, maybe layers metadata after it). It lists no images: the pinned
 *   compose file names them by digest, and each image's `index.json` gives its manifest's size.
 */
export type AppManifestForm = 'ferry' | 'compose-app';

export interface PinnedImage {
  readonly ref: string;
  readonly manifest: Descriptor;
}

export interface AppManifest {
  readonly form: AppManifestForm;
  /** `layers[0]`: the compose project archive. */
  readonly archive: Descriptor;
  /** The `ferry` form's list of pinned image manifests; the `compose-app` form has none. */
  readonly images?: readonly PinnedImage[];
}

/** The annotation, and its one version, that aktualizr-lite requires of an app manifest. */
export const COMPOSE_APP_ANNOTATION = 'compose-app';
export const COMPOSE_APP_VERSION = 'v1';
const FERRY_NAME_ANNOTATION = 'org.ferry.app.name';

/** The config blob a `ferry` app manifest points at: an empty JSON object. */
export const EMPTY_CONFIG = Buffer.from('{}');

/** The media type compose-publish gives the archive layer. */
const COMPOSE_PUBLISH_ARCHIVE = 'application/tar+gzip';

/** The bytes of a `ferry` form manifest. */
export function ferryAppManifest(
  name: string,
  config: Descriptor,
  archive: Descriptor,
  images: readonly PinnedImage[],
): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config,
      layers: [archive],
      annotations: { [FERRY_NAME_ANNOTATION]: name },
      images,
    }),
  );
}

/**
 * The bytes of a `compose-app` form manifest, field for field as compose-publish's OCI manifest builder writes one:
 * an empty config blob, the archive as the one layer, the version annotation.
 */
export function composeAppManifest(archive: { digest: string; size: number }): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config: {
        mediaType: MEDIA.ociConfig,
        digest: 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
        size: 0,
      },
      layers: [{ mediaType: COMPOSE_PUBLISH_ARCHIVE, digest: archive.digest, size: archive.size }],
      annotations: { [COMPOSE_APP_ANNOTATION]: COMPOSE_APP_VERSION },
    }),
  );
}

export function parseAppManifest(json: unknown, app: string): AppManifest {
  const manifest = json as {
    schemaVersion?: unknown;
    mediaType?: unknown;
    config?: unknown;
    layers?: unknown;
    annotations?: Record<string, unknown>;
    images?: unknown;
  } | null;
  if (
    typeof manifest !== 'object' ||
    manifest === null ||
    manifest.schemaVersion !== 2 ||
    manifest.mediaType !== MEDIA.ociManifest
  ) {
    throw new Error('not an OCI manifest');
  }
  const annotations =
    typeof manifest.annotations === 'object' && manifest.annotations !== null ? manifest.annotations : {};
  const layers = manifest.layers;
  if (!Array.isArray(layers) || layers.length === 0 || !isDescriptor(layers[0]))
    throw new Error('layers[0] must be the descriptor of the compose archive');
  const archive = layers[0];

  if (annotations[COMPOSE_APP_ANNOTATION] !== undefined) {
    if (annotations[COMPOSE_APP_ANNOTATION] !== COMPOSE_APP_VERSION) {
      throw new Error(
        `compose-app manifest version ${JSON.stringify(annotations[COMPOSE_APP_ANNOTATION])} is not supported (only "${COMPOSE_APP_VERSION}")`,
      );
    }
    // layers[1], when present, is compose-publish's layers metadata: sizes for a space check, nothing to install.
    if (!layers.every(isDescriptor)) throw new Error('layers are not valid descriptors');
    return { form: 'compose-app', archive };
  }

  if (annotations[FERRY_NAME_ANNOTATION] === undefined) {
    throw new Error(
      `is annotated neither "${COMPOSE_APP_ANNOTATION}" (compose-publish's form) nor "${FERRY_NAME_ANNOTATION}" (ferry's)`,
    );
  }
  if (!isDescriptor(manifest.config)) throw new Error('config is not a descriptor');
  if (layers.length !== 1) throw new Error('must have exactly one layer: the compose archive');
  if (archive.mediaType !== MEDIA.appArchive) throw new Error(`layer media type is ${archive.mediaType}`);
  if (annotations[FERRY_NAME_ANNOTATION] !== app)
    throw new Error(`names app "${String(annotations[FERRY_NAME_ANNOTATION])}", not "${app}"`);
  const images = manifest.images;
  if (
    !Array.isArray(images) ||
    !images.every((image) => typeof image?.ref === 'string' && isDescriptor(image.manifest))
  ) {
    throw new Error('images must list {ref, manifest descriptor}');
  }
  return { form: 'ferry', archive, images: images as PinnedImage[] };
}
