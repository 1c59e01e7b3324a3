import { writeSync } from 'node:fs';
import { treeBytes } from './device/free-space.js';

/**
 * Progress of the long steps (copying apps, pulling a rootfs, checking a bundle), in bytes. The code that copies
 * only reports events; how they are shown (bars on a terminal, JSON lines for a factory dashboard, nothing) is the
 * command line's business.
 */
export interface ProgressEvent {
  /** What is being done: `apps`, `rootfs`, `verify`… */
  readonly phase: string;
  readonly bytes: number;
  readonly total: number;
  readonly target?: string;
  readonly app?: string;
}

export type ProgressListener = (event: ProgressEvent) => void;

/**
 * For a step that reports no progress of its own (an `ostree pull-local`): the bytes that have appeared under `dir`
 * are sampled twice a second until `work` settles, then the phase is reported complete.
 */
export async function withGrowthProgress<T>(
  dir: string,
  event: Omit<ProgressEvent, 'bytes'>,
  listener: ProgressListener | undefined,
  work: () => Promise<T>,
): Promise<T> {
  if (listener === undefined) return work();
  const base = await treeBytes(dir);
  listener({ ...event, bytes: 0 });
  let sampling = false;
  const timer = setInterval(() => {
    if (sampling) return;
    sampling = true;
    void treeBytes(dir)
      .then((bytes) => listener({ ...event, bytes: Math.min(event.total, Math.max(0, bytes - base)) }))
      .catch(() => undefined)
      .finally(() => (sampling = false));
  }, 500);
  try {
    const result = await work();
    listener({ ...event, bytes: event.total });
    return result;
  } finally {
    clearInterval(timer);
  }
}

/** Writes each event as one JSON line to an open file descriptor (`--progress-fd N`). */
export function jsonLinesProgress(fd: number): ProgressListener {
  return (event) => {
    try {
      // Synchronous on purpose: the events stay in order, and a closed reader never stalls the update.
      writeSync(fd, `${JSON.stringify(event)}\n`);
    } catch {
      // A dashboard that went away does not stop an install.
    }
  };
}

/** Fans one event out to several listeners (bars and JSON lines at once). */
export function fanOut(listeners: ReadonlyArray<ProgressListener | undefined>): ProgressListener | undefined {
  const present = listeners.filter((listener): listener is ProgressListener => listener !== undefined);
  if (present.length === 0) return undefined;
  return (event) => {
    for (const listener of present) listener(event);
  };
}
