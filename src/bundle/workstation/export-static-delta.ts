import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ProgressListener } from '../../progress.js';
import type { FactoryRepo } from '../../repo/factory-repo.js';
import type { StaticDeltaRootfs } from '../../tuf/bundle-targets.js';
import { checkFitsMedia, type MediaFilesystem } from '../../util/media-filesystem.js';
import { BIG_READ_CHUNK } from '../../util/sparse-file.js';
import type { BundleDir } from '../format/bundle-dir.js';
import { staticDeltaName } from '../format/static-delta.js';
import { fileDigest } from '../../util/file-digest.js';
import { scratchDir } from './export-scratch.js';

/**
 * The rootfs of an export --rootfs static-delta: one `ostree static-delta generate` file to the target's commit, from
 * nothing or from the base of a delta bundle, written beside the factory and then onto the media with plain writes
 * (ostree's own writes need what FAT and FUSE filesystems lack). Returns the entry bundle-targets.json signs: its
 * name, length and SHA-256, measured on the file ostree wrote.
 */
export async function writeStaticDelta(
  repo: FactoryRepo,
  bundle: BundleDir,
  target: { name: string; commit: string },
  context: {
    media: MediaFilesystem | undefined;
    progress: ProgressListener | undefined;
    /** The tree is a scratch directory beside the factory (an archive's): the file is moved there, not copied. */
    scratchTree: boolean;
    base: { commit: string } | undefined;
  },
): Promise<StaticDeltaRootfs> {
  const name = staticDeltaName(target.commit);
  const scratch = await scratchDir(repo, 'rootfs');
  try {
    const generated = path.join(scratch, path.basename(name));
    await repo.ostree.generateStaticDelta({ to: target.commit, from: context.base?.commit, file: generated });
    const digest = await fileDigest(generated);
    if (context.media !== undefined) checkFitsMedia(context.media, bundle.root, [{ name, bytes: digest.length }]);
    const destination = path.join(bundle.root, ...name.split('/'));
    await fs.mkdir(path.dirname(destination), { recursive: true });
    const report = (bytes: number) =>
      context.progress?.({ phase: 'rootfs', bytes, total: digest.length, target: target.name });
    report(0);
    if (context.scratchTree) await fs.rename(generated, destination);
    else await copyWithProgress(generated, destination, digest.length, report);
    report(digest.length);
    return {
      form: 'static-delta',
      file: name,
      length: digest.length,
      sha256: digest.sha256,
      ...(context.base === undefined ? {} : { from: context.base.commit }),
    };
  } finally {
    await fs.rm(scratch, { recursive: true, force: true });
  }
}

async function copyWithProgress(
  from: string,
  to: string,
  total: number,
  report: (bytes: number) => void,
): Promise<void> {
  let bytes = 0;
  let reported = 0;
  const count = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      bytes += chunk.length;
      // One event per half per cent of a file that may be gigabytes.
      if (bytes - reported >= total / 200) {
        reported = bytes;
        report(bytes);
      }
      done(null, chunk);
    },
  });
  await pipeline(createReadStream(from, { highWaterMark: BIG_READ_CHUNK }), count, createWriteStream(to));
}
