import type { OstreeRepo } from './ostree-repo.js';

/** How often the destination is looked at while a pull runs. */
const SAMPLE_INTERVAL_MS = 500;

const ALL_PREFIXES = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'));

/**
 * Counts what a pull has written: the file objects of a commit that the destination lacked when the pull began,
 * each counted with its content size once it appears there under its name. Only grows.
 */
export class PullCounter {
  /** prefix → checksum → size: the objects not seen yet, by the directory they will appear in. */
  private readonly awaited = new Map<string, Map<string, number>>();
  private written = 0;
  readonly total: number;

  constructor(
    private readonly destination: Pick<OstreeRepo, 'fileObjectsUnder'>,
    sizes: ReadonlyMap<string, number>,
    presentBefore: ReadonlySet<string>,
  ) {
    let total = 0;
    for (const [checksum, size] of sizes) {
      if (presentBefore.has(checksum)) continue;
      const prefix = checksum.slice(0, 2);
      const awaited = this.awaited.get(prefix) ?? new Map<string, number>();
      awaited.set(checksum, size);
      this.awaited.set(prefix, awaited);
      total += size;
    }
    this.total = total;
  }

  /** The bytes written so far. Looks only in the directories where objects are still awaited. */
  async sample(): Promise<number> {
    for (const checksum of await this.destination.fileObjectsUnder([...this.awaited.keys()])) {
      const prefix = checksum.slice(0, 2);
      const awaited = this.awaited.get(prefix);
      const size = awaited?.get(checksum);
      if (awaited === undefined || size === undefined) continue;
      this.written += size;
      awaited.delete(checksum);
      if (awaited.size === 0) this.awaited.delete(prefix);
    }
    return this.written;
  }
}

/**
 * Runs `pull` (an `ostree pull-local` of `commit` from `source` into `destination`, which reports no progress of its
 * own) and reports its progress in bytes of file content written, against the bytes the destination lacked: the
 * commit's objects are listed while the pull runs, then counted as they appear. Ends with a complete report when
 * the pull succeeds; reports nothing when no one listens.
 */
export async function withPullProgress<T>(
  repos: {
    readonly source: OstreeRepo;
    /** Only looked at: the device's repository, through its port. */
    readonly destination: Pick<OstreeRepo, 'fileObjectsUnder'>;
    readonly commit: string;
  },
  report: ((bytes: number, total: number) => void) | undefined,
  pull: () => Promise<T>,
): Promise<T> {
  if (report === undefined) return pull();
  const presentBefore = new Set(await repos.destination.fileObjectsUnder(ALL_PREFIXES));
  let finished = false;
  let timer: NodeJS.Timeout | undefined;
  // Listed beside the pull rather than before it: the copy does not wait for the count.
  const counting = repos.source
    .fileObjectSizes(repos.commit)
    .then((sizes) => {
      const counter = new PullCounter(repos.destination, sizes, presentBefore);
      if (finished) return counter;
      let sampling = false;
      const sample = () => {
        if (sampling) return;
        sampling = true;
        void counter
          .sample()
          .then((bytes) => {
            if (!finished) report(bytes, counter.total);
          })
          .catch(() => undefined)
          .finally(() => (sampling = false));
      };
      // The pull has been running meanwhile: the first report says how far it got.
      sample();
      timer = setInterval(sample, SAMPLE_INTERVAL_MS);
      return counter;
    })
    // Without a count there is no progress to show; the pull itself decides whether the copy worked.
    .catch(() => undefined);
  try {
    const result = await pull();
    finished = true;
    const counter = await counting;
    if (counter !== undefined) report(counter.total, counter.total);
    return result;
  } finally {
    finished = true;
    clearInterval(timer);
    // Nothing of this keeps running after the pull: the listing is awaited whatever the outcome.
    await counting;
  }
}
