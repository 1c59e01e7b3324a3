import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { FerryError } from '../../errors.js';
import { readInChunks, SparseFile } from '../../util/sparse-file.js';
import { hexOf } from './digest.js';

export interface PutOptions {
  readonly expectedSize?: number;
  readonly mismatch: FerryError['outcome'];
  readonly label: string;
}

/**
 * A content-addressed blob store: `<dir>/sha256/<hex>`, as an OCI layout's shared blob directory. A blob is written
 * to a temp file while its SHA-256 is computed on the way, and it gets its final name only if the digest (and the
 * size, when known) match. So a blob under its name is always the right content, and a blob present is never copied
 * again. Blobs are streamed, never held whole (layers may be many GiB), and written sparse: zeros a layer holds in
 * whole blocks take no space in the copy.
 */
export class BlobStore {
  /**
   * `syncEachBlob: false` is for a store that is flushed whole once it is complete (a bundle on its media, synced by
   * the export before it says done): one flush of the filesystem instead of one per blob.
   */
  constructor(
    readonly dir: string,
    private readonly durability: { readonly syncEachBlob: boolean } = { syncEachBlob: true },
  ) {}

  pathOf(digest: string): string {
    return path.join(this.dir, 'sha256', hexOf(digest));
  }

  async has(digest: string): Promise<boolean> {
    try {
      return (await fs.stat(this.pathOf(digest))).isFile();
    } catch {
      return false;
    }
  }

  async size(digest: string): Promise<number> {
    return (await fs.stat(this.pathOf(digest))).size;
  }

  /**
   * Streams `source` into the store under `digest`. Refuses with `mismatch` (an outcome) when the content does not
   * hash to the digest or exceeds `expectedSize`. Returns false when the blob was already present.
   */
  async put(digest: string, source: () => Readable, options: PutOptions): Promise<boolean> {
    return this.store(digest, options, async (accept) => {
      for await (const chunk of source()) await accept(chunk as Buffer);
    });
  }

  /**
   * Copies a blob from another store, verifying it on the way. The file is read into one reused buffer rather than
   * streamed: a multi-GiB layer then costs its copy and its hash, not millions of fresh buffers.
   */
  copyFrom(other: BlobStore, digest: string, options: PutOptions): Promise<boolean> {
    return this.store(digest, options, (accept) => readInChunks(other.pathOf(digest), accept));
  }

  /** Re-hashes a blob in place: true when its content matches its name (and size). */
  async verify(digest: string, expectedSize?: number): Promise<boolean> {
    const hash = createHash('sha256');
    let size = 0;
    try {
      await readInChunks(this.pathOf(digest), (chunk) => {
        size += chunk.length;
        hash.update(chunk);
      });
    } catch {
      return false;
    }
    return `sha256:${hash.digest('hex')}` === digest && (expectedSize === undefined || expectedSize === size);
  }

  /**
   * Writes what `feed` hands over to a temp file, hashing and counting it, and gives it its name only when it is
   * the blob `digest` names. `feed` waits for each accept(), which is done with the chunk when it resolves.
   */
  private async store(
    digest: string,
    options: PutOptions,
    feed: (accept: (chunk: Buffer) => Promise<void>) => Promise<void>,
  ): Promise<boolean> {
    if (await this.has(digest)) return false;
    const target = this.pathOf(digest);
    await fs.mkdir(path.dirname(target), { recursive: true });
    const temp = `${target}.${process.pid}.${randomBytes(4).toString('hex')}.partial`;
    const hash = createHash('sha256');
    let size = 0;
    const limit = options.expectedSize;
    let file: SparseFile | undefined;
    try {
      file = await SparseFile.create(temp, { mode: 0o644, sync: this.durability.syncEachBlob });
      const out = file;
      await feed(async (chunk) => {
        size += chunk.length;
        if (limit !== undefined && size > limit) {
          throw new FerryError(
            options.mismatch,
            `${options.label}: larger than the ${limit} bytes its descriptor says`,
          );
        }
        hash.update(chunk);
        await out.write(chunk);
      });
      await file.finish();
      const actual = `sha256:${hash.digest('hex')}`;
      if (actual !== digest) {
        throw new FerryError(options.mismatch, `${options.label}: content hashes to ${actual}, expected ${digest}`);
      }
      if (limit !== undefined && size !== limit) {
        throw new FerryError(options.mismatch, `${options.label}: ${size} bytes, its descriptor says ${limit}`);
      }
      await fs.rename(temp, target);
      return true;
    } catch (error) {
      await file?.close();
      await fs.rm(temp, { force: true });
      throw error;
    }
  }

  async readSmall(digest: string, maxBytes: number): Promise<Buffer> {
    const file = this.pathOf(digest);
    const { size } = await fs.stat(file);
    if (size > maxBytes) throw new RangeError(`blob ${digest} is ${size} bytes, more than ${maxBytes}`);
    return fs.readFile(file);
  }
}
