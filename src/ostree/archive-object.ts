import { createHash } from 'node:crypto';
import { createInflateRaw, inflateRawSync, type InflateRaw } from 'node:zlib';

/**
 * Computes the OSTree checksum of a file object of an archive-mode repo (`.filez`) from its bytes as they stream
 * by, so that a member of a single-file bundle is verified before it lands on disk.
 *
 * A `.filez` is: a big-endian u32 header length, 4 bytes of padding, the header (the GVariant `(tuuuusa(ayay))`:
 * size, uid, gid, mode, rdev, symlink target, xattrs, numbers big-endian), then the content as raw deflate.
 * The object's checksum is SHA-256 over the same framing of the header without its size, `(uuuusa(ayay))`, followed
 * by the uncompressed content (none for a symlink).
 */
export class ArchiveFileObjectHasher {
  private buffered: Buffer = Buffer.alloc(0);
  private readonly hash = createHash('sha256');
  private inflate: InflateRaw | undefined;
  private inflated = 0;
  private declaredSize = 0;
  private isRegular = false;
  private failure: Error | undefined;
  private inflateDone: Promise<void> = Promise.resolve();

  /** The most a header may take: far more than any real one. */
  static readonly MAX_HEADER = 64 * 1024;

  /**
   * Takes the next bytes of the object. When it returns a promise, wait for it before the next update: inflating
   * runs behind, and a multi-GiB file object must not queue up in memory meanwhile.
   */
  update(chunk: Buffer): Promise<void> | undefined {
    if (this.failure) return undefined;
    if (this.inflate === undefined) {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      const rest = this.takeHeader();
      if (rest === undefined || this.failure) return undefined;
      this.buffered = Buffer.alloc(0);
      this.start();
      return rest.length > 0 ? this.feed(rest) : undefined;
    }
    return this.feed(chunk);
  }

  /**
   * The checksum of an object whose bytes are all in `bytes` (a small one), its content inflated in one call rather
   * than through a stream of its own: the same checks as update() and digest(), without a zlib stream and its
   * buffers for each of the tens of thousands of small objects of a rootfs. Undefined when the header declares more
   * than `maxInflated` bytes of content: such an object goes through update() and digest().
   */
  static digestWhole(bytes: Buffer, maxInflated: number): string | Error | undefined {
    const hasher = new ArchiveFileObjectHasher();
    hasher.buffered = bytes;
    const rest = hasher.takeHeader();
    if (hasher.failure) return hasher.failure;
    if (rest === undefined) return new Error('a truncated file object header');
    if (!hasher.isRegular)
      return rest.length > 0 ? new Error('a symlink object with content') : hasher.hash.digest('hex');
    if (hasher.declaredSize > maxInflated) return undefined;
    let content: Buffer;
    try {
      // One byte more than declared may come out, so that content past the declared size is told apart.
      content = inflateRawSync(rest, { maxOutputLength: hasher.declaredSize + 1 });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ERR_BUFFER_TOO_LARGE')
        return new Error(`the content inflates past its declared ${hasher.declaredSize} bytes`);
      return new Error(`the content does not inflate: ${(error as Error).message}`);
    }
    if (content.length > hasher.declaredSize)
      return new Error(`the content inflates past its declared ${hasher.declaredSize} bytes`);
    if (content.length !== hasher.declaredSize)
      return new Error(`the content is ${content.length} bytes, its header says ${hasher.declaredSize}`);
    hasher.hash.update(content);
    return hasher.hash.digest('hex');
  }

  /**
   * Reads the header from the bytes buffered so far and hashes it: the bytes after it, or undefined while the header
   * is incomplete (or malformed: then `failure` says why).
   */
  private takeHeader(): Buffer | undefined {
    if (this.buffered.length < 8) return undefined;
    const headerLength = this.buffered.readUInt32BE(0);
    if (headerLength < 26 || headerLength > ArchiveFileObjectHasher.MAX_HEADER) {
      this.failure = new Error(`a file object header of ${headerLength} bytes`);
      return undefined;
    }
    if (this.buffered.length < 8 + headerLength) return undefined;
    this.readHeader(this.buffered.subarray(8, 8 + headerLength));
    return this.buffered.subarray(8 + headerLength);
  }

  private readHeader(header: Buffer): void {
    this.declaredSize = Number(header.readBigUInt64BE(0));
    const mode = header.readUInt32BE(16);
    this.isRegular = (mode & 0o170000) === 0o100000;
    const offsetSize = framingOffsetSize(header.length);
    const stringEnd = header.readUIntLE(header.length - offsetSize, offsetSize);
    if (stringEnd < 25 || stringEnd > header.length - offsetSize || header[stringEnd - 1] !== 0) {
      this.failure = new Error('a malformed file object header');
      return;
    }
    // The checksummed header: the same fields without the leading size, with its own framing offset.
    const body = Buffer.concat([header.subarray(8, stringEnd), header.subarray(stringEnd, header.length - offsetSize)]);
    const bodyOffsetSize = framingOffsetSize(body.length, true);
    const end = Buffer.alloc(bodyOffsetSize);
    end.writeUIntLE(stringEnd - 8, 0, bodyOffsetSize);
    const fileHeader = Buffer.concat([body, end]);
    const prefix = Buffer.alloc(8);
    prefix.writeUInt32BE(fileHeader.length, 0);
    this.hash.update(prefix);
    this.hash.update(fileHeader);
  }

  /** Starts inflating the content, once the header is read. */
  private start(): void {
    const inflate = createInflateRaw();
    this.inflate = inflate;
    this.inflateDone = new Promise<void>((resolve) => {
      inflate.on('data', (data: Buffer) => {
        this.inflated += data.length;
        if (this.inflated > this.declaredSize) {
          this.failure ??= new Error(`the content inflates past its declared ${this.declaredSize} bytes`);
          inflate.destroy();
          resolve();
          return;
        }
        this.hash.update(data);
      });
      inflate.on('end', resolve);
      inflate.on('close', resolve);
      inflate.on('error', (error) => {
        this.failure ??= new Error(`the content does not inflate: ${error.message}`);
        resolve();
      });
    });
  }

  private feed(chunk: Buffer): Promise<void> | undefined {
    if (!this.isRegular) {
      if (chunk.length > 0) this.failure ??= new Error('a symlink object with content');
      return undefined;
    }
    const inflate = this.inflate!;
    if (inflate.write(chunk) || this.failure) return undefined;
    // Drained, or finished early (an error, or content past its declared size): either way, go on.
    return Promise.race([new Promise<void>((resolve) => inflate.once('drain', resolve)), this.inflateDone]);
  }

  /** The checksum (hex), or an Error that says why the bytes are no file object. */
  async digest(): Promise<string | Error> {
    if (this.inflate === undefined) return this.failure ?? new Error('a truncated file object header');
    if (this.isRegular) {
      this.inflate.end();
      await this.inflateDone;
    }
    if (this.failure) return this.failure;
    if (this.isRegular && this.inflated !== this.declaredSize) {
      return new Error(`the content is ${this.inflated} bytes, its header says ${this.declaredSize}`);
    }
    return this.hash.digest('hex');
  }
}

/** GVariant's framing offset size for a container: the smallest that can address the container itself. */
function framingOffsetSize(length: number, bodyOnly = false): number {
  for (const size of [1, 2, 4]) {
    const total = bodyOnly ? length + size : length;
    if (total <= 2 ** (8 * size) - 1) return size;
  }
  return 8;
}
