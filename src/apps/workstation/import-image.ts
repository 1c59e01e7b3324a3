import { createReadStream, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tar from 'tar-stream';
import { FerryError, describeCause } from '../../errors.js';
import { runTool } from '../../util/tool.js';
import { BlobStore } from '../format/blob-store.js';
import type { Descriptor } from '../format/digest.js';
import { parseImageRef, type ImageRef } from '../format/image-ref.js';
import { parseImageManifest, parseIndex, REF_NAME } from '../format/oci-layout.js';

export interface ImportedImage {
  readonly ref: ImageRef;
  readonly manifest: Descriptor;
  /** The config and layer descriptors, for sizes and for the device's checks. */
  readonly blobs: readonly Descriptor[];
}

const MAX_JSON = 4 * 1024 * 1024;

function bad(message: string, cause?: unknown): FerryError {
  return new FerryError('APP_INVALID', message, cause === undefined ? {} : { cause });
}

/** The RepoTags[0] of a `docker save` archive, read from its manifest.json without unpacking the layers. */
async function dockerArchiveTag(file: string): Promise<string> {
  const extract = tar.extract();
  let tag: string | undefined;
  await new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, stream, next) => {
      if (header.name !== 'manifest.json' || (header.size ?? 0) > MAX_JSON) {
        stream.on('end', next);
        stream.resume();
        return;
      }
      const chunks: Buffer[] = [];
      stream.on('data', (data: unknown) => chunks.push(data as Buffer));
      stream.on('end', () => {
        try {
          const manifest = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Array<{ RepoTags?: string[] }>;
          tag = manifest[0]?.RepoTags?.[0];
        } catch (error) {
          reject(error);
        }
        next();
      });
    });
    extract.on('finish', resolve);
    extract.on('error', reject);
    createReadStream(file).on('error', reject).pipe(extract);
  });
  if (tag === undefined) throw bad(`${file}: a docker archive with no RepoTags; tag the image before docker save`);
  return tag;
}

/**
 * Copies one image into `store`: from an OCI layout directory (its index.json names the full reference in
 * org.opencontainers.image.ref.name), or from a `docker save` archive (converted by skopeo). Every blob is verified
 * against its digest on the way in.
 */
export async function importImage(store: BlobStore, source: string): Promise<ImportedImage> {
  let stat;
  try {
    stat = await fs.stat(source);
  } catch (error) {
    throw bad(`image ${source}: ${describeCause(error)}`, error);
  }
  if (stat.isDirectory()) return importLayout(store, source, undefined);
  const tagged = await dockerArchiveTag(source).catch((error: unknown) => {
    throw error instanceof FerryError
      ? error
      : bad(`image ${source} is neither an OCI layout nor a docker archive: ${describeCause(error)}`, error);
  });
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-docker-archive-'));
  try {
    await runTool('skopeo', [
      'copy',
      '--quiet',
      `docker-archive:${source}`,
      `oci:${work}/layout:${tagged.replace(/[^A-Za-z0-9_.-]/g, '_')}`,
    ]);
    return await importLayout(store, path.join(work, 'layout'), tagged);
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

async function importLayout(store: BlobStore, layout: string, knownRef: string | undefined): Promise<ImportedImage> {
  const source = new BlobStore(path.join(layout, 'blobs'));
  let index;
  try {
    index = parseIndex(JSON.parse(await fs.readFile(path.join(layout, 'index.json'), 'utf8')));
  } catch (error) {
    throw bad(`image ${layout}: index.json: ${describeCause(error)}`, error);
  }
  if (index.manifests.length !== 1)
    throw bad(`image ${layout}: index.json must name exactly one image, it names ${index.manifests.length}`);
  const descriptor = index.manifests[0]!;
  const refText = knownRef ?? descriptor.annotations?.[REF_NAME];
  const ref = refText === undefined ? undefined : parseImageRef(refText);
  if (ref === undefined || ref.digest !== undefined) {
    throw bad(
      `image ${layout}: index.json must carry the full image reference (host/path:tag) in ${REF_NAME}, it has ${JSON.stringify(refText)}`,
    );
  }
  const copy = (blob: Descriptor, label: string) =>
    store.copyFrom(source, blob.digest, {
      expectedSize: blob.size,
      mismatch: 'APP_INVALID',
      label: `image ${layout}: ${label}`,
    });
  await copy(descriptor, 'manifest');
  let manifest;
  try {
    manifest = parseImageManifest(JSON.parse((await store.readSmall(descriptor.digest, MAX_JSON)).toString('utf8')));
  } catch (error) {
    throw bad(`image ${layout}: manifest: ${describeCause(error)}`, error);
  }
  for (const blob of [manifest.config, ...manifest.layers]) await copy(blob, blob.digest);
  return {
    ref,
    manifest: { mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size },
    blobs: [manifest.config, ...manifest.layers],
  };
}
