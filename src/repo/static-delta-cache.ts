import { promises as fs } from 'node:fs';
import path from 'node:path';
import { readTextIfPresent, syncDirectory, writeFileAtomic } from '../util/atomic-file.js';
import { fileDigest } from '../util/file-digest.js';
import { processAlive } from '../util/process-alive.js';
import type { FactoryRepo } from './factory-repo.js';

/**
 * The static deltas exports made, kept in the factory (`static-deltas/`) for the next export of the same change.
 * `ostree static-delta generate` compresses every object with LZMA: minutes of CPU for a rootfs of hundreds of MiB,
 * where copying the result onto a stick takes seconds, and a factory line writes the same bundle onto many sticks.
 *
 * A delta is named by its two commits, so its content never changes; each is kept with the length and SHA-256
 * measured when it was made. Before a kept delta is used it is read and checked against them: one that no longer
 * matches (a damaged disk, a hand edit), or has no record, is removed and made again, never used. The directory may
 * be deleted at any time; exports hold the factory's lock, so no two write it at once.
 */

export const STATIC_DELTA_CACHE_DIR = 'static-deltas';

export interface KeptStaticDelta {
  /** The delta's file in the factory's cache: read it, never change it. */
  readonly file: string;
  readonly length: number;
  readonly sha256: string;
  /** Made by this call (false: a kept one, checked). */
  readonly generated: boolean;
}

interface Record {
  readonly length: number;
  readonly sha256: string;
}

/** The static delta to `to` from `from` (from nothing when undefined): the kept one when it checks, else made now. */
export async function staticDeltaFor(
  repo: FactoryRepo,
  delta: { readonly to: string; readonly from?: string | undefined },
): Promise<KeptStaticDelta> {
  const dir = path.join(repo.dir, STATIC_DELTA_CACHE_DIR);
  const file = path.join(dir, `${delta.from ?? 'empty'}-${delta.to}.delta`);
  const recordFile = `${file}.json`;
  const kept = parseRecord(await readTextIfPresent(recordFile).catch(() => undefined));
  if (kept !== undefined) {
    const actual = await fileDigest(file).catch(() => undefined);
    if (actual?.length === kept.length && actual.sha256 === kept.sha256) return { file, ...kept, generated: false };
  }
  // Nothing usable kept: the record goes first, so that a crash from here on leaves no record for a file.
  await fs.rm(recordFile, { force: true });
  await fs.mkdir(dir, { recursive: true });
  await removeDeadTemps(dir);
  const temp = `${file}.tmp-${process.pid}`;
  try {
    await repo.ostree.generateStaticDelta({ to: delta.to, from: delta.from, file: temp });
    const measured = await fileDigest(temp);
    const handle = await fs.open(temp, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(temp, file);
    await syncDirectory(dir);
    await writeFileAtomic(recordFile, `${JSON.stringify(measured)}\n`);
    return { file, ...measured, generated: true };
  } finally {
    await fs.rm(temp, { force: true });
  }
}

/** What an export killed while it made a delta left behind. */
async function removeDeadTemps(dir: string): Promise<void> {
  for (const name of await fs.readdir(dir)) {
    const owner = /\.tmp-(\d+)$/.exec(name)?.[1];
    if (owner !== undefined && !processAlive(Number(owner))) await fs.rm(path.join(dir, name), { force: true });
  }
}

function parseRecord(text: string | undefined): Record | undefined {
  if (text === undefined) return undefined;
  try {
    const value = JSON.parse(text) as Partial<Record>;
    if (Number.isSafeInteger(value.length) && typeof value.sha256 === 'string' && /^[0-9a-f]{64}$/.test(value.sha256))
      return { length: value.length!, sha256: value.sha256 };
  } catch {
    // An unreadable record is no record: the delta is made again.
  }
  return undefined;
}
