import { writeSync } from 'node:fs';

/**
 * Progress of the long steps (copying apps, pulling a rootfs, checking a bundle, the testing window). The code that
 * does the work only reports events; how they are shown (bars on a terminal, JSON lines for a factory dashboard,
 * nothing) is the command line's business.
 */
export type ProgressEvent = ByteProgress | TestingProgress;

/** A copy or a check, in bytes. A phase with nothing to do reports a total of 0. */
export interface ByteProgress {
  /** What is being done: `apps`, `rootfs`, `verify`, `decrypt` (an encrypted bundle's payload). */
  readonly phase: 'apps' | 'rootfs' | 'verify' | 'decrypt';
  readonly bytes: number;
  readonly total: number;
  readonly target?: string;
  readonly app?: string;
}

/**
 * The testing window of `run`, in seconds: how much of it has passed, of how long it is, and each app's status goal
 * with what it reached at the last look (running, healthy, starting, unhealthy, failed).
 */
export interface TestingProgress {
  readonly phase: 'testing';
  readonly seconds: number;
  readonly total: number;
  readonly target?: string;
  readonly apps?: Readonly<Record<string, { readonly goal: string; readonly reached: string }>>;
}

export type ProgressListener = (event: ProgressEvent) => void;

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
