import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { BlobStore } from '../format/blob-store.js';
import { digestOf, MEDIA, type Descriptor } from '../format/digest.js';
import { REF_NAME, writeImageLayout } from '../format/oci-layout.js';
import { BUSYBOX } from '../../sim/rootfs.js';
import { writeTar, type TarMember } from '../../util/tar-pack.js';

const APPLETS = ['sh', 'sleep', 'echo', 'cat', 'date', 'ls', 'true', 'false', 'test', 'mkdir', 'touch'];

/** A base layer with Debian's static busybox and its common applets: the same bytes every time. */
export function busyboxLayer(busybox = BUSYBOX): TarMember[] {
  return [
    { type: 'directory', name: 'bin' },
    { type: 'file-from', name: 'bin/busybox', source: busybox, mode: 0o755 },
    ...APPLETS.map((applet): TarMember => ({ type: 'symlink', name: `bin/${applet}`, target: 'busybox' })),
    { type: 'directory', name: 'data' },
    { type: 'directory', name: 'tmp', mode: 0o1777 },
  ];
}

export interface BuildImageOptions {
  /** The full reference written into index.json, e.g. `ferry.local/demo/heartbeat:1`. */
  readonly ref: string;
  readonly layers: ReadonlyArray<readonly TarMember[]>;
  readonly cmd: readonly string[];
  /** An OCI layout directory: its own blobs/ unless `sharedBlobs` is given. */
  readonly outDir: string;
  readonly sharedBlobs?: BlobStore;
}

async function sha256OfStream(stream: NodeJS.ReadableStream): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

/** Builds a runnable OCI image without a container engine: gzipped layers, a config, a manifest and index.json. */
export async function buildImage(options: BuildImageOptions): Promise<Descriptor> {
  const blobs = options.sharedBlobs ?? new BlobStore(path.join(options.outDir, 'blobs'));
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-image-'));
  try {
    const layers: Descriptor[] = [];
    const diffIds: string[] = [];
    for (const [i, members] of options.layers.entries()) {
      const file = path.join(work, `layer${i}.tar.gz`);
      await writeTar(file, members, { gzip: true });
      const digest = await sha256OfStream(createReadStream(file));
      diffIds.push(await sha256OfStream(createReadStream(file).pipe(createGunzip())));
      await blobs.put(digest, () => createReadStream(file), { mismatch: 'INTERNAL_ERROR', label: file });
      layers.push({ mediaType: MEDIA.ociLayerGzip, digest, size: (await fs.stat(file)).size });
    }
    const config = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Cmd: options.cmd, Env: ['PATH=/bin'], WorkingDir: '/' },
        rootfs: { type: 'layers', diff_ids: diffIds },
        history: layers.map(() => ({ created_by: 'ferry image builder' })),
      }),
    );
    const configDescriptor = await putBytes(blobs, MEDIA.ociConfig, config);
    const manifest = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociManifest, config: configDescriptor, layers }),
    );
    const manifestDescriptor = await putBytes(blobs, MEDIA.ociManifest, manifest);
    await writeImageLayout(options.outDir, { ...manifestDescriptor, annotations: { [REF_NAME]: options.ref } });
    return manifestDescriptor;
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

export async function putBytes(blobs: BlobStore, mediaType: string, bytes: Buffer): Promise<Descriptor> {
  const digest = digestOf(bytes);
  await blobs.put(digest, () => Readable.from([bytes]), { mismatch: 'INTERNAL_ERROR', label: mediaType });
  return { mediaType, digest, size: bytes.length };
}
