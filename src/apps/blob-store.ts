import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FerryError } from '../errors.js';
import { hexOf } from './digest.js';

/**
 * A content-addressed blob store: `<dir>/sha256/<hex>`, as an OCI layout's shared blob directory. A blob is written
 * to a temp file while its SHA-256 is computed on the way, and it gets its final name only if the digest (and the
 * size, when known) match. So a blob under its name is always the right content, and a blob present is never copied
 * again.
 */
export class BlobStore {
  constructor(readonly dir: string) {}

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
  async put(
    digest: string,
    source: () => Readable,
    options: { expectedSize?: number; mismatch: FerryError['outcome']; label: string },
  ): Promise<boolean> {
    if (await this.has(digest)) return false;
    const target = this.pathOf(digest);
    await fs.mkdir(path.dirname(target), { recursive: true });
    const temp = `${target}.${process.pid}.${randomBytes(4).toString('hex')}.partial`;
    const hash = createHash('sha256');
    let size = 0;
    const limit = options.expectedSize;
    const meter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        size += chunk.length;
        if (limit !== undefined && size > limit) {
          callback(
            new FerryError(options.mismatch, `${options.label}: larger than the ${limit} bytes its descriptor says`),
          );
          return;
        }
        hash.update(chunk);
        callback(null, chunk);
      },
    });
    try {
      const out = createWriteStream(temp, { flags: 'wx', mode: 0o644 });
      await pipeline(source(), meter, out);
      const actual = `sha256:${hash.digest('hex')}`;
      if (actual !== digest) {
        throw new FerryError(options.mismatch, `${options.label}: content hashes to ${actual}, expected ${digest}`);
      }
      if (limit !== undefined && size !== limit) {
        throw new FerryError(options.mismatch, `${options.label}: ${size} bytes, its descriptor says ${limit}`);
      }
      const handle = await fs.open(temp, 'r');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
      await fs.rename(temp, target);
      return true;
    } catch (error) {
      await fs.rm(temp, { force: true });
      throw error;
    }
  }

  /** Copies a blob from another store, verifying it on the way. */
  copyFrom(
    other: BlobStore,
    digest: string,
    options: { expectedSize?: number; mismatch: FerryError['outcome']; label: string },
  ): Promise<boolean> {
    return this.put(digest, () => createReadStream(other.pathOf(digest)), options);
  }

  /** Re-hashes a blob in place: true when its content matches its name (and size). */
  async verify(digest: string, expectedSize?: number): Promise<boolean> {
    const hash = createHash('sha256');
    let size = 0;
    try {
      for await (const chunk of createReadStream(this.pathOf(digest))) {
        size += (chunk as Buffer).length;
        hash.update(chunk as Buffer);
      }
    } catch {
      return false;
    }
    return `sha256:${hash.digest('hex')}` === digest && (expectedSize === undefined || expectedSize === size);
  }

  async readSmall(digest: string, maxBytes: number): Promise<Buffer> {
    const file = this.pathOf(digest);
    const { size } = await fs.stat(file);
    if (size > maxBytes) throw new RangeError(`blob ${digest} is ${size} bytes, more than ${maxBytes}`);
    return fs.readFile(file);
  }
}
