import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import { BIG_READ_CHUNK } from './sparse-file.js';

/**
 * The length and SHA-256 of a file, read once in large chunks. With `copyTo` (a new file, made 0600), each chunk is
 * also written there as it is hashed: the copy holds exactly the bytes the digest is of, and the source is read once.
 */
export async function fileDigest(
  file: string,
  options: { readonly copyTo?: string } = {},
): Promise<{ length: number; sha256: string }> {
  const hash = createHash('sha256');
  let length = 0;
  const copy = options.copyTo === undefined ? undefined : await fs.open(options.copyTo, 'wx', 0o600);
  try {
    for await (const chunk of createReadStream(file, { highWaterMark: BIG_READ_CHUNK })) {
      hash.update(chunk as Buffer);
      length += (chunk as Buffer).length;
      // writeFile writes the whole chunk at the handle's position, where write() may write only part of it.
      if (copy !== undefined) await copy.writeFile(chunk as Buffer);
    }
  } finally {
    await copy?.close();
  }
  return { length, sha256: hash.digest('hex') };
}
