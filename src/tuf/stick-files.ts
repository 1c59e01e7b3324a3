import { readdirSync } from 'node:fs';
import path from 'node:path';
import { FerryError, describeCause } from '../errors.js';
import { readSmallFileSync } from '../util/atomic-file.js';
import { METADATA_MAX_BYTES } from './verify-metadata.js';

/**
 * Reads the metadata files of a stick's `tuf/` directory (every `*.json` directly in it) into memory, each with the
 * size cap before a byte is read: the pure verifiers (detectStickFormat, verifyFoundriesStick) take their bytes from
 * here. An oversized file is kept out and named, so that it is refused as the file it is. The files are few and
 * small: they are read without the event loop (readSmallFileSync).
 */
export async function readStickMetadataFiles(tufDir: string): Promise<Map<string, Uint8Array>> {
  let names: string[];
  try {
    names = readdirSync(tufDir, { withFileTypes: true })
      .filter((entry) => entry.isFile() && entry.name.endsWith('.json'))
      .map((entry) => entry.name)
      .sort();
  } catch (error) {
    throw new FerryError('BUNDLE_UNREADABLE', `cannot read ${tufDir}: ${describeCause(error)}`, { cause: error });
  }
  const files = new Map<string, Uint8Array>();
  for (const name of names) {
    try {
      files.set(name, readSmallFileSync(path.join(tufDir, name), METADATA_MAX_BYTES));
    } catch (error) {
      throw new FerryError('METADATA_MALFORMED', `tuf/${name}: ${describeCause(error)}`, { cause: error });
    }
  }
  return files;
}
