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
import { staticDeltaFor } from '../../repo/static-delta-cache.js';

/**
 * The rootfs of an export --rootfs static-delta: one `ostree static-delta generate` file to the target's commit, from
 * nothing or from the base of a delta bundle, made beside the factory (and kept there for the next export of the same
 * change: src/repo/static-delta-cache.ts) and then copied onto the media with plain writes (ostree's own writes need
 * what FAT and FUSE filesystems lack). Returns the entry bundle-targets.json signs: its name, length and SHA-256,
 * measured on the file ostree wrote.
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
  // Made once per change and kept in the factory: the generation is minutes of compression, the copy seconds.
  const delta = await staticDeltaFor(repo, { to: target.commit, from: context.base?.commit });
  if (context.media !== undefined) checkFitsMedia(context.media, bundle.root, [{ name, bytes: delta.length }]);
  const destination = path.join(bundle.root, ...name.split('/'));
  await fs.mkdir(path.dirname(destination), { recursive: true });
  const report = (bytes: number) =>
    context.progress?.({ phase: 'rootfs', bytes, total: delta.length, target: target.name });
  report(0);
  // A scratch tree is beside the factory, on its filesystem: a hard link to the kept file, which nothing writes.
  if (
    !context.scratchTree ||
    !(await fs.link(delta.file, destination).then(
      () => true,
      () => false,
    ))
  )
    await copyWithProgress(delta.file, destination, delta.length, report);
  report(delta.length);
  return {
    form: 'static-delta',
    file: name,
    length: delta.length,
    sha256: delta.sha256,
    ...(context.base === undefined ? {} : { from: context.base.commit }),
  };
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
