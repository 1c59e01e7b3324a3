import path from 'node:path';
import { BlobStore } from './blob-store.js';
import { hexOf } from './digest.js';
import type { ImageRef } from './image-ref.js';

/**
 * Where the app directories sit under the root. `ferry`: directly in it (reference §1), where an app named `blobs`
 * would meet the blob store. `foundries`: in `apps/` beside `blobs/`, as aktualizr-lite's app store
 * (RestorableAppEngine: `<store>/apps`, `<store>/blobs`) and a fioctl stick's `apps/` hold them.
 */
export type AppsLayout = 'ferry' | 'foundries';

/**
 * The apps layout of reference §1, shared by the factory repo, the bundle and the device's app store:
 *   <root>/<app>/<app-hex>/{uri, manifest.json, <archive-hex>.tgz, docker-compose.yml, images/<host>/<path>/<hex>/}
 *   <root>/blobs/sha256/<hex>     one blob store for every image
 * and in the Foundries layout the same app directories one level down, in <root>/apps/<app>/<app-hex>/.
 * Paths hold only the hex of a digest: a colon is not a file name character on every stick.
 */
export class AppsDir {
  readonly blobs: BlobStore;
  /** The directory that holds one directory per app. */
  readonly appsRoot: string;

  constructor(
    readonly root: string,
    durability?: { readonly syncEachBlob: boolean },
    readonly layout: AppsLayout = 'ferry',
  ) {
    this.blobs = new BlobStore(path.join(root, 'blobs'), durability);
    this.appsRoot = layout === 'foundries' ? path.join(root, 'apps') : root;
  }

  appDir(app: string, digest: string): string {
    return path.join(this.appsRoot, app, hexOf(digest));
  }

  uriFile(app: string, digest: string): string {
    return path.join(this.appDir(app, digest), 'uri');
  }

  manifestFile(app: string, digest: string): string {
    return path.join(this.appDir(app, digest), 'manifest.json');
  }

  archiveFile(app: string, digest: string, archiveDigest: string): string {
    return path.join(this.appDir(app, digest), `${hexOf(archiveDigest)}.tgz`);
  }

  composeFile(app: string, digest: string): string {
    return path.join(this.appDir(app, digest), 'docker-compose.yml');
  }

  /** Where the compose project is unpacked on the device, for docker-compose to run from. */
  projectDir(app: string, digest: string): string {
    return path.join(this.appDir(app, digest), 'project');
  }

  imageDir(app: string, digest: string, image: ImageRef & { digest: string }): string {
    return path.join(this.appDir(app, digest), 'images', image.host, ...image.path.split('/'), hexOf(image.digest));
  }
}
