import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, openSync, promises as fs, readSync } from 'node:fs';
import path from 'node:path';

/**
 * Replace `file` so that a reader (or a power cut) sees either the old bytes or the new ones, never a mix:
 * write a temp file beside it, fsync it, rename it over, then fsync the directory so the rename itself is durable.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const dir = path.dirname(file);
  const temp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const handle = await fs.open(temp, 'wx', mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await fs.rename(temp, file);
  } catch (error) {
    await fs.rm(temp, { force: true });
    throw error;
  }
  await syncDirectory(dir);
}

export async function syncDirectory(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export async function pathExists(target: string): Promise<boolean> {
  try {
    await fs.lstat(target);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

/** A small text file's content, or undefined when there is no such file (any other error is thrown). */
export async function readTextIfPresent(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Reads a file that must be small (metadata, state): a size cap before reading keeps a hostile file from eating memory. */
export async function readSmallFile(file: string, maxBytes: number): Promise<Buffer> {
  const handle = await fs.open(file, 'r');
  try {
    const { size } = await handle.stat();
    if (size > maxBytes) {
      throw new RangeError(`${file} is ${size} bytes, more than the ${maxBytes} bytes allowed`);
    }
    const buffer = Buffer.alloc(size);
    let offset = 0;
    while (offset < size) {
      const { bytesRead } = await handle.read(buffer, offset, size - offset, offset);
      if (bytesRead === 0) break;
      offset += bytesRead;
    }
    return buffer.subarray(0, offset);
  } finally {
    await handle.close();
  }
}

/**
 * readSmallFile without the event loop, for the few small files a step must have before it can go on (a stick's
 * metadata): each await of an asynchronous read is a round trip through the thread pool and back, and on a busy
 * machine every return waits for its turn, which costs more than the read.
 */
export function readSmallFileSync(file: string, maxBytes: number): Buffer {
  const handle = openSync(file, 'r');
  try {
    const { size } = fstatSync(handle);
    if (size > maxBytes) {
      throw new RangeError(`${file} is ${size} bytes, more than the ${maxBytes} bytes allowed`);
    }
    const buffer = Buffer.alloc(size);
    let offset = 0;
    while (offset < size) {
      const bytesRead = readSync(handle, buffer, offset, size - offset, offset);
      if (bytesRead === 0) break;
      offset += bytesRead;
    }
    return buffer.subarray(0, offset);
  } finally {
    closeSync(handle);
  }
}

export async function isEmptyOrMissingDir(dir: string): Promise<boolean> {
  try {
    const entries = await fs.readdir(dir);
    return entries.length === 0;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw error;
  }
}
