import { createReadStream } from 'node:fs';
import tar from 'tar-stream';

/** The `signed` part of tuf/bundle-targets.json in a single-file bundle (a tar), read without unpacking it. */
export async function bundleTargetsOf(file: string): Promise<Record<string, any>> {
  let found: Buffer | undefined;
  const extract = tar.extract();
  extract.on('entry', (header, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: unknown) => {
      if (header.name === 'tuf/bundle-targets.json') chunks.push(chunk as Buffer);
    });
    stream.on('end', () => {
      if (header.name === 'tuf/bundle-targets.json') found = Buffer.concat(chunks);
      next();
    });
  });
  const done = new Promise((resolve, reject) => {
    extract.on('finish', () => resolve(undefined));
    extract.on('error', reject);
  });
  createReadStream(file).pipe(extract);
  await done;
  if (found === undefined) throw new Error(`${file} has no tuf/bundle-targets.json`);
  return JSON.parse(found.toString('utf8')).signed;
}
