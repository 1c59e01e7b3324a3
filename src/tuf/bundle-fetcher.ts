import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Fetcher } from 'tuf-js';
// Not re-exported from the package index; the root walk ends only on a DownloadHTTPError with status 404.
import { DownloadHTTPError, DownloadLengthMismatchError } from 'tuf-js/dist/error.js';
import { readSmallFile } from '../util/atomic-file.js';

export const BUNDLE_METADATA_URL = 'ferry-bundle:/tuf/';

/**
 * Serves tuf-js's metadata requests from the `tuf/` directory of a bundle. Only plain file names directly under
 * that directory are served: a request for anything else is a 404, never a path outside the bundle.
 */
export class BundleFetcher implements Fetcher {
  constructor(private readonly tufDir: string) {}

  private fileFor(url: string): string | undefined {
    if (!url.startsWith(BUNDLE_METADATA_URL)) return undefined;
    const name = decodeURIComponent(url.slice(BUNDLE_METADATA_URL.length));
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*\.json$/.test(name)) return undefined;
    return path.join(this.tufDir, name);
  }

  async downloadBytes(url: string, maxLength: number): Promise<Buffer> {
    const file = this.fileFor(url);
    if (file === undefined) throw new DownloadHTTPError(`${url} is not a bundle metadata file`, 404);
    try {
      return await readSmallFile(file, maxLength);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new DownloadHTTPError(`${path.basename(file)} not found in the bundle`, 404);
      if (error instanceof RangeError) throw new DownloadLengthMismatchError(error.message);
      throw error;
    }
  }

  async downloadFile<T>(url: string, maxLength: number, handler: (file: string) => Promise<T>): Promise<T> {
    const file = this.fileFor(url);
    if (file === undefined) throw new DownloadHTTPError(`${url} is not a bundle metadata file`, 404);
    const { size } = await fs.stat(file);
    if (size > maxLength) throw new DownloadLengthMismatchError(`${path.basename(file)} exceeds ${maxLength} bytes`);
    return handler(file);
  }
}
