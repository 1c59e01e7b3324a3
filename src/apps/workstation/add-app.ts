import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FerryError, describeCause } from '../../errors.js';
import type { FactoryRepo } from '../../repo/factory-repo.js';
import { APP_NAME } from '../../tuf/target.js';
import { writeFileAtomic } from '../../util/atomic-file.js';
import { composeAppManifest, EMPTY_CONFIG, ferryAppManifest } from '../format/app-manifest.js';
import { putBytes } from './build-image.js';
import { COMPOSE_FILE_LIST, composeFileAmong, parseCompose, setServiceImage } from '../format/compose.js';
import { digestOf, MEDIA } from '../format/digest.js';
import { formatImageRef, nameOf, parseImageRef } from '../format/image-ref.js';
import { importImage, type ImportedImage } from './import-image.js';
import { writeImageLayout } from '../format/oci-layout.js';
import { membersOfDirectory, writeTar, type TarMember } from '../../util/tar-pack.js';

export interface AddAppOptions {
  readonly name: string;
  readonly composeDir: string;
  readonly images: readonly string[];
}

export interface AddedApp {
  readonly name: string;
  readonly digest: string;
  readonly uri: string;
  readonly images: readonly string[];
}

function invalid(message: string, cause?: unknown): FerryError {
  return new FerryError('APP_INVALID', message, cause === undefined ? {} : { cause });
}

export function appUri(factory: string, app: string, digest: string): string {
  return `apps.ferry.local/${factory}/${app}@${digest}`;
}

/**
 * `app add`, as compose-publish does it: every service image is pinned by digest to one of the given images, the
 * project is packed into a deterministic tar+gzip, and an app manifest ties the archive (and, in ferry's form, the
 * image manifests) together. A fioctl factory writes the manifest in compose-publish's own form, the one
 * aktualizr-lite reads. Everything lands content-addressed in the factory's apps/ (reference §1 layout).
 */
export async function addApp(repo: FactoryRepo, options: AddAppOptions): Promise<AddedApp> {
  if (!APP_NAME.test(options.name) || options.name === 'blobs') {
    throw new FerryError(
      'USAGE',
      `app name "${options.name}" must be lower-case letters, digits, - and _ (and not "blobs")`,
    );
  }
  let topLevel: string[];
  try {
    topLevel = (await fs.readdir(options.composeDir, { withFileTypes: true }))
      .filter((entry) => entry.isFile())
      .map((entry) => entry.name);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such directory' : code === 'ENOTDIR' ? 'not a directory' : describeCause(error);
    throw invalid(`--compose ${options.composeDir}: ${why}`, error);
  }
  const composeFile = composeFileAmong(topLevel);
  if (composeFile === undefined)
    throw invalid(`--compose ${options.composeDir} holds no compose file (${COMPOSE_FILE_LIST})`);
  let project;
  try {
    project = parseCompose(await fs.readFile(path.join(options.composeDir, composeFile), 'utf8'));
  } catch (error) {
    throw invalid(`${composeFile}: ${describeCause(error)}`, error);
  }

  const apps = repo.apps;
  const imported: ImportedImage[] = [];
  for (const source of options.images) imported.push(await importImage(apps.blobs, path.resolve(source)));

  const used = new Map<string, ImportedImage & { pinned: string }>();
  for (const service of project.services) {
    const ref = parseImageRef(service.image);
    if (ref === undefined) throw invalid(`service "${service.name}": "${service.image}" is not an image reference`);
    const match =
      ref.digest !== undefined
        ? imported.find((image) => image.manifest.digest === ref.digest)
        : imported.find(
            (image) => nameOf(image.ref) === nameOf(ref) && (image.ref.tag ?? 'latest') === (ref.tag ?? 'latest'),
          );
    if (match === undefined) {
      throw invalid(
        `service "${service.name}": image "${service.image}" is not among the --image given (${imported.map((image) => formatImageRef(image.ref)).join(', ') || 'none'})`,
      );
    }
    const pinned = formatImageRef({ host: ref.host, path: ref.path, digest: match.manifest.digest });
    setServiceImage(project, service.name, pinned);
    used.set(pinned, { ...match, pinned });
  }
  const pinnedCompose = project.document.toString();

  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-app-'));
  try {
    const members: TarMember[] = [];
    for (const member of await membersOfDirectory(options.composeDir)) {
      if (member.type === 'symlink')
        throw invalid(`--compose ${options.composeDir}: ${member.name} is a symlink; apps hold only files`);
      members.push(member.name === composeFile ? { type: 'file', name: composeFile, content: pinnedCompose } : member);
    }
    const archiveFile = path.join(work, 'app.tgz');
    await writeTar(archiveFile, members, { gzip: true });
    const archiveBytes = await fs.readFile(archiveFile);
    const archive = { mediaType: MEDIA.appArchive, digest: digestOf(archiveBytes), size: archiveBytes.length };
    const images = [...used.values()].map((image) => ({ ref: image.pinned, manifest: image.manifest }));
    // A fioctl factory's sticks are for aktualizr-lite, which takes only compose-publish's manifest form.
    const manifestBytes =
      (await repo.metadataFormat()) === 'fioctl'
        ? composeAppManifest(archive)
        : ferryAppManifest(options.name, await putBytes(apps.blobs, MEDIA.appConfig, EMPTY_CONFIG), archive, images);
    const digest = digestOf(manifestBytes);
    const settings = await repo.settings();
    const uri = appUri(settings.factory, options.name, digest);

    await fs.mkdir(apps.appDir(options.name, digest), { recursive: true });
    await writeFileAtomic(apps.manifestFile(options.name, digest), manifestBytes);
    await writeFileAtomic(apps.uriFile(options.name, digest), uri);
    await fs.copyFile(archiveFile, apps.archiveFile(options.name, digest, archive.digest));
    await writeFileAtomic(apps.composeFile(options.name, digest), pinnedCompose);
    for (const image of used.values()) {
      const ref = parseImageRef(image.pinned)!;
      await writeImageLayout(
        apps.imageDir(options.name, digest, { ...ref, digest: image.manifest.digest }),
        image.manifest,
      );
    }
    await repo.saveSettings({ ...settings, apps: { ...settings.apps, [options.name]: digest } });
    return { name: options.name, digest, uri, images: [...used.keys()] };
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}
