import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { OstreeRepo } from '../../ostree/ostree-repo.js';
import { withPullProgress } from '../../ostree/pull-progress.js';
import type { ProgressListener } from '../../progress.js';
import type { FactoryRepo } from '../../repo/factory-repo.js';
import { checkFitsMedia, type MediaFile, type MediaFilesystem } from '../../util/media-filesystem.js';
import { BIG_READ_CHUNK } from '../../util/sparse-file.js';
import type { BundleDir } from '../format/bundle-dir.js';
import { pullBase, removeObjectsOf } from './export-delta.js';
import { scratchDir } from './export-scratch.js';

/**
 * The target's commit and all it reaches, from the factory repo into the bundle's; for a delta, minus the base. The
 * ref that names it is set once the content is checked.
 */
export async function copyRootfs(
  repo: FactoryRepo,
  bundle: BundleDir,
  target: { name: string; commit: string },
  context: {
    /** The bundle has no ostree_repo/ yet. */
    newRepo: boolean;
    media: MediaFilesystem | undefined;
    progress: ProgressListener | undefined;
    /** The tree is a scratch copy beside the factory: hard links to the factory's objects are fine there. */
    scratchTree: boolean;
    /** A delta's base commit, and the scratch directory it is pulled into. */
    base: { commit: string; scratch: string } | undefined;
  },
): Promise<void> {
  const { commit } = target;
  // Objects a bundle already holds are not copied again: targets share what they can.
  if (context.newRepo) await OstreeRepo.create(bundle.ostreeRepo.path, 'archive');
  // ostree writes its objects with hard links and rename flags that FAT32, exFAT and FUSE filesystems lack: there it
  // pulls beside the factory, and the objects are copied onto the media with plain writes. A delta is made beside
  // the factory too (unless the whole tree is): the pull there only links, and only what the base lacks is then
  // written to the media, not the whole target written and most of it removed again.
  const plainWrites = context.media?.hardLinks === false;
  const deltaOntoMedia = context.base !== undefined && !context.scratchTree;
  const rootfsScratch = plainWrites || deltaOntoMedia ? await scratchDir(repo, 'rootfs') : undefined;
  const progress = context.progress;
  const reportRootfs =
    progress && ((bytes: number, total: number) => progress({ phase: 'rootfs', bytes, total, target: target.name }));
  try {
    const into =
      rootfsScratch === undefined
        ? bundle.ostreeRepo
        : await OstreeRepo.create(path.join(rootfsScratch, 'repo'), 'archive');
    // The media is flushed once when everything is written (see writeBundleTree); a scratch tree never is.
    const pull = () => into.pullLocal(repo.ostree.path, commit, { untrusted: false, disableFsync: true });
    // Beside the factory the pull only links; the copy onto the media is what takes time, and reports the progress.
    if (rootfsScratch !== undefined) await pull();
    else await withPullProgress({ source: repo.ostree, destination: into, commit }, reportRootfs, pull);
    if (context.base !== undefined) {
      const baseRepo = await pullBase(repo, context.base.scratch, context.base.commit);
      await removeObjectsOf(path.join(baseRepo.path, 'objects'), path.join(into.path, 'objects'), commit);
    }
    if (rootfsScratch !== undefined)
      await copyObjectsOntoMedia(into, bundle.ostreeRepo, context.media, (bytes, total) =>
        reportRootfs?.(bytes, total),
      );
    // On the same filesystem ostree hard-links objects: the stick must never share an inode with the factory.
    else if (!context.scratchTree && (await sameFilesystem(repo.ostree.path, bundle.ostreeRepo.path)))
      await unshareHardLinks(path.join(bundle.ostreeRepo.path, 'objects'));
  } finally {
    if (rootfsScratch !== undefined) await fs.rm(rootfsScratch, { recursive: true, force: true });
  }
}

/**
 * Copies the objects of `from` that `to` lacks, with nothing but create and write: what every filesystem a stick can
 * carry offers. Every object is measured against the media's file size limit before the first one is written. The
 * media is flushed once with the rest of the bundle.
 */
async function copyObjectsOntoMedia(
  from: OstreeRepo,
  to: OstreeRepo,
  media: MediaFilesystem | undefined,
  progress: (bytes: number, total: number) => void,
): Promise<void> {
  const objectsDir = path.join(from.path, 'objects');
  const copies: { source: string; target: string; file: MediaFile }[] = [];
  for (const prefix of await fs.readdir(objectsDir)) {
    // What the media holds already (another target's objects), listed once per directory: a lookup per object is
    // tens of thousands of them on a stick.
    const present = new Set(await fs.readdir(path.join(to.path, 'objects', prefix)).catch(() => []));
    for (const name of await fs.readdir(path.join(objectsDir, prefix))) {
      if (present.has(name)) continue;
      const relative = path.join('objects', prefix, name);
      const source = path.join(from.path, relative);
      const bytes = (await fs.stat(source)).size;
      copies.push({ source, target: path.join(to.path, relative), file: { name: `ostree_repo/${relative}`, bytes } });
    }
  }
  if (media !== undefined)
    checkFitsMedia(
      media,
      to.path,
      copies.map((copy) => copy.file),
    );
  const total = copies.reduce((sum, copy) => sum + copy.file.bytes, 0);
  let bytes = 0;
  let reported = 0;
  progress(bytes, total);
  const made = new Set<string>();
  for (const copy of copies) {
    const dir = path.dirname(copy.target);
    if (!made.has(dir)) {
      await fs.mkdir(dir, { recursive: true });
      made.add(dir);
    }
    await pipeline(createReadStream(copy.source, { highWaterMark: BIG_READ_CHUNK }), createWriteStream(copy.target));
    bytes += copy.file.bytes;
    // Tens of thousands of objects: one event per half per cent, not one per object.
    if (bytes - reported >= total / 200 || bytes === total) {
      reported = bytes;
      progress(bytes, total);
    }
  }
}

async function sameFilesystem(a: string, b: string): Promise<boolean> {
  const [first, second] = await Promise.all([fs.stat(a), fs.stat(b)]);
  return first.dev === second.dev;
}

async function unshareHardLinks(dir: string): Promise<void> {
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      await unshareHardLinks(full);
    } else if (entry.isFile() && (await fs.stat(full)).nlink > 1) {
      await fs.copyFile(full, `${full}.copy`);
      await fs.rename(`${full}.copy`, full);
    }
  }
}
