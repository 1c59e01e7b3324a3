import { createHash } from 'node:crypto';

/** `sha256:<64 hex>`, the only digest algorithm ferry accepts. */
export const DIGEST = /^sha256:([0-9a-f]{64})$/;

export function isDigest(value: unknown): value is string {
  return typeof value === 'string' && DIGEST.test(value);
}

export function hexOf(digest: string): string {
  const match = DIGEST.exec(digest);
  if (match === null) throw new Error(`not a sha256 digest: ${digest}`);
  return match[1]!;
}

export function digestOf(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** An OCI content descriptor: what a manifest says about one blob. */
export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly annotations?: Record<string, string>;
}

export function isDescriptor(value: unknown): value is Descriptor {
  const candidate = value as Partial<Descriptor> | null;
  return (
    typeof candidate === 'object' &&
    candidate !== null &&
    typeof candidate.mediaType === 'string' &&
    isDigest(candidate.digest) &&
    Number.isSafeInteger(candidate.size) &&
    (candidate.size as number) >= 0
  );
}

export const MEDIA = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  appConfig: 'application/vnd.ferry.compose-app.config.v1+json',
  appArchive: 'application/vnd.ferry.compose-app.archive.v1.tar+gzip',
} as const;
