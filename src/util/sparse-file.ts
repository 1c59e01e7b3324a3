import { promises as fs } from 'node:fs';
import { Writable } from 'node:stream';

/**
 * The unit in which runs of zeros become holes. It matches the largest common filesystem block size, so a hole is
 * always whole blocks that the filesystem need not allocate, and it is small enough that a block of real bytes
 * among zeros costs little.
 */
export const SPARSE_BLOCK = 64 * 1024;

/** Read size for big files: fewer, larger chunks through the hashing streams. */
export const BIG_READ_CHUNK = 1024 * 1024;

/**
 * Read size for an archive whose chunks are handed on through a chain of streams (an unpacked tar's members): each
 * read is a fresh buffer, and a chunk still on its way to disk when V8 collects the young generation is promoted,
 * freed only by a full collection. With 1 MiB chunks, unpacking an archive's app blobs left some 35 MiB of them
 * waiting; with 64 KiB ones, a sixteenth of that, at no measurable cost in time.
 */
export const STREAM_READ_CHUNK = 64 * 1024;

const ZEROS = Buffer.alloc(SPARSE_BLOCK);

/**
 * The carry buffers of closed files, for the next file to take: a bundle unpacks tens of thousands of small files one
 * after another, and a fresh 64 KiB buffer for each is gigabytes of garbage that V8 lets pile up (native memory, freed
 * only by a full collection) to tens of MiB before it collects it. A few files are written at once at most.
 */
const spareCarries: Buffer[] = [];
const SPARE_CARRIES_KEPT = 8;

let carriesAllocated = 0;

/** How many carry buffers were allocated, not taken from the spares: what a test of their reuse looks at. */
export function carryBuffersAllocated(): number {
  return carriesAllocated;
}

function takeCarry(): Buffer {
  const spare = spareCarries.pop();
  if (spare !== undefined) return spare;
  carriesAllocated += 1;
  // Its bytes are never read before they are written: `carried` says how many are valid.
  return Buffer.allocUnsafeSlow(SPARSE_BLOCK);
}

function giveBackCarry(carry: Buffer): void {
  if (spareCarries.length < SPARE_CARRIES_KEPT) spareCarries.push(carry);
}

function isZero(bytes: Buffer): boolean {
  return bytes.equals(ZEROS.subarray(0, bytes.length));
}

export interface SparseWriteOptions {
  readonly mode?: number;
  /** fsync the file before it counts as finished. */
  readonly sync?: boolean;
}

/**
 * A new file (`wx`: it refuses to replace one) that leaves a hole wherever a whole aligned block is zeros, instead of
 * writing it. Image layers and the tars that carry them are often mostly zeros (preallocated disk images, database
 * files), and a copy of a sparse multi-GiB blob then costs what its real bytes cost, on the stick and on the device.
 * The content reads back byte for byte the same: the file is extended to its full length at the end, so trailing
 * zeros are there too. Whoever hashes what goes in still hashes every byte.
 *
 * write() is done with its chunk when it resolves (it keeps no reference to it), so a caller may read the next
 * chunk into the same buffer: fresh buffers for every chunk of a many-GiB file cost more than the copy itself.
 */
export class SparseFile {
  // Bytes below `flushed` (a multiple of the block size) are written or left as holes; `carry` holds the bytes of
  // the block after it, until that block is complete and can be judged.
  private flushed = 0;
  private readonly carry = takeCarry();
  private carried = 0;

  private constructor(
    private handle: fs.FileHandle | undefined,
    private readonly options: SparseWriteOptions,
  ) {}

  static async create(file: string, options: SparseWriteOptions = {}): Promise<SparseFile> {
    return new SparseFile(await fs.open(file, 'wx', options.mode ?? 0o644), options);
  }

  /** Bytes written so far, holes included. */
  get length(): number {
    return this.flushed + this.carried;
  }

  async write(chunk: Buffer): Promise<void> {
    let offset = 0;
    if (this.carried > 0) {
      offset = Math.min(SPARSE_BLOCK - this.carried, chunk.length);
      chunk.copy(this.carry, this.carried, 0, offset);
      this.carried += offset;
      if (this.carried < SPARSE_BLOCK) return;
      await this.emitBlocks(this.carry);
      this.carried = 0;
    }
    const whole = Math.floor((chunk.length - offset) / SPARSE_BLOCK) * SPARSE_BLOCK;
    if (whole > 0) await this.emitBlocks(chunk.subarray(offset, offset + whole));
    offset += whole;
    if (offset < chunk.length) this.carried = chunk.copy(this.carry, 0, offset);
  }

  /** Writes what is left, sets the length (a file that ends in a hole is only as long as its last write), closes. */
  async finish(): Promise<void> {
    const tail = this.carry.subarray(0, this.carried);
    if (!isZero(tail)) await this.writeAt(tail, this.flushed);
    await this.open().truncate(this.length);
    if (this.options.sync) await this.open().sync();
    await this.close();
    // Only a finished file gives its carry back: every write is done with it. A file closed half way (a failed
    // copy) may still have a write in flight that uses it.
    giveBackCarry(this.carry);
  }

  /** Closes the file without finishing it; the caller removes it. */
  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close();
  }

  private open(): fs.FileHandle {
    if (this.handle === undefined) throw new Error('the file is closed');
    return this.handle;
  }

  private async writeAt(bytes: Buffer, position: number): Promise<void> {
    let done = 0;
    while (done < bytes.length) {
      const { bytesWritten } = await this.open().write(bytes, done, bytes.length - done, position + done);
      done += bytesWritten;
    }
  }

  /** Writes whole blocks starting at `flushed`: each run of data in one write, zero blocks not at all. */
  private async emitBlocks(blocks: Buffer): Promise<void> {
    let runStart = 0;
    for (let offset = 0; offset < blocks.length; offset += SPARSE_BLOCK) {
      if (!isZero(blocks.subarray(offset, offset + SPARSE_BLOCK))) continue;
      if (offset > runStart) await this.writeAt(blocks.subarray(runStart, offset), this.flushed + runStart);
      runStart = offset + SPARSE_BLOCK;
    }
    if (blocks.length > runStart) await this.writeAt(blocks.subarray(runStart), this.flushed + runStart);
    this.flushed += blocks.length;
  }
}

/** A SparseFile as a write stream, for pipelines; it finishes only once the file is closed. */
export function createSparseWriteStream(file: string, options: SparseWriteOptions = {}): Writable {
  let sparse: SparseFile | undefined;
  return new Writable({
    highWaterMark: BIG_READ_CHUNK,
    construct(callback) {
      SparseFile.create(file, options).then(
        (created) => {
          sparse = created;
          callback();
        },
        (error: Error) => callback(error),
      );
    },
    write(chunk: Buffer, _encoding, callback) {
      sparse!.write(chunk).then(() => callback(), callback);
    },
    final(callback) {
      sparse!.finish().then(() => callback(), callback);
    },
    destroy(error, callback) {
      const closing = sparse?.close() ?? Promise.resolve();
      closing.then(
        () => callback(error),
        () => callback(error),
      );
    },
  });
}

/**
 * Reads `file` in chunks of BIG_READ_CHUNK into one reused buffer, handing each to `onChunk` and waiting for it:
 * `onChunk` must be done with the chunk (hashed it, written it) when its promise resolves.
 */
export async function readInChunks(file: string, onChunk: (chunk: Buffer) => Promise<void> | void): Promise<void> {
  const handle = await fs.open(file, 'r');
  try {
    const buffer = Buffer.allocUnsafe(BIG_READ_CHUNK);
    for (let position = 0; ;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0) return;
      position += bytesRead;
      await onChunk(buffer.subarray(0, bytesRead));
    }
  } finally {
    await handle.close();
  }
}
