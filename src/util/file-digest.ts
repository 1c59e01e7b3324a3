import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { BIG_READ_CHUNK } from './sparse-file.js';

/** The length and SHA-256 of a file, read once in large chunks. */
export async function fileDigest(file: string): Promise<{ length: number; sha256: string }> {
  const hash = createHash('sha256');
  let length = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: BIG_READ_CHUNK })) {
    hash.update(chunk as Buffer);
    length += (chunk as Buffer).length;
  }
  return { length, sha256: hash.digest('hex') };
}
