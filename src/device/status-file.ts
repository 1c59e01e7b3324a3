import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { AppPin } from '../tuf/target.js';
import { writeFileAtomic } from '../util/atomic-file.js';

/** Update states as Pantavisor names them (reference §4); IDLE is a device no update has touched yet. */
export const UPDATE_STATES = [
  'IDLE',
  'QUEUED',
  'VERIFYING',
  'COPYING',
  'INPROGRESS',
  'TESTING',
  'DONE',
  'UPDATED',
  'WONTGO',
  'ERROR',
] as const;
export type UpdateState = (typeof UPDATE_STATES)[number];

/** Percent done while copying; seconds left while testing. */
export interface Progress {
  readonly unit: 'percent' | 'seconds-left';
  readonly value: number;
}

export interface TargetRef {
  readonly name: string;
  readonly version: string;
  readonly commit: string;
  readonly apps: Readonly<Record<string, AppPin>>;
}

export interface PendingUpdate {
  readonly target: TargetRef;
  /** What ran before the install: the rollback point if the new target fails. */
  readonly previous: TargetRef | null;
  readonly installedAt: string;
  /** How the update completes: after a reboot, or after an engine restart (only apps changed). */
  readonly completion: 'reboot' | 'restart-engine';
  readonly rootfsChanged: boolean;
  /** Set when this pending update is the way back from a target whose apps failed on its new rootfs. */
  readonly rollbackOf?: TargetRef;
  /**
   * Set once `run` has started the apps: the testing window runs from `since` to `until`. `boot` names the boot it
   * began in: after a power cut the apps were restarted, so the window starts again.
   */
  readonly testing?: { readonly since: string; readonly until: string; readonly boot?: string };
  /**
   * "deploying" is recorded before the boot trial, the reboot marker and the deployment are written, "staged" once
   * they all are. A record still "deploying" after the install has stopped belongs to an interrupted install.
   * Records written before this field existed are "staged".
   */
  readonly stage?: 'deploying' | 'staged';
  /** Set when this install repairs an inconsistent device with the same target. */
  readonly repair?: boolean;
}

export interface HistoryEntry {
  readonly at: string;
  readonly command: string;
  readonly state: UpdateState;
  readonly outcome: string;
  readonly exitCode: number;
  readonly target?: string;
  readonly message: string;
}

export interface DeviceStatus {
  readonly schema: 1;
  readonly state: UpdateState;
  readonly reason: string;
  readonly progress: Progress | null;
  /** What the last command did, kept with a WONTGO or an ERROR: the lines that explain it. */
  readonly log: readonly string[];
  /** Mender's INCONSISTENT: a rollback failed too, and the device is in no known-good state. */
  readonly inconsistent: { readonly reason: string; readonly at: string; readonly target: TargetRef | null } | null;
  readonly current: TargetRef | null;
  readonly pending: PendingUpdate | null;
  readonly rollback: TargetRef | null;
  readonly failedTargets: ReadonlyArray<{ readonly target: TargetRef; readonly at: string; readonly reason: string }>;
  /**
   * How the last update (or the last start of the current apps) failed, with its log snippet; a successful `run`
   * clears it. An install refused while another update is pending is only a history line: it is not the device's.
   */
  readonly lastError: {
    readonly outcome: string;
    readonly exitCode: number;
    readonly message: string;
    readonly at: string;
    readonly log: readonly string[];
  } | null;
  readonly history: readonly HistoryEntry[];
  /**
   * Where the last install's bundle came from: the bundle directory, or the directory holding a .tar or .zip bundle.
   * `run` leaves its report there. Absent in records written before it existed.
   */
  readonly lastMedia?: string | null;
}

export const HISTORY_LIMIT = 200;

export function emptyStatus(): DeviceStatus {
  return {
    schema: 1,
    state: 'IDLE',
    reason: 'no update has run yet',
    progress: null,
    log: [],
    inconsistent: null,
    current: null,
    pending: null,
    rollback: null,
    failedTargets: [],
    lastError: null,
    history: [],
    lastMedia: null,
  };
}

export function appendHistory(status: DeviceStatus, entry: HistoryEntry): readonly HistoryEntry[] {
  return [...status.history, entry].slice(-HISTORY_LIMIT);
}

function looksLikeStatus(value: unknown): value is DeviceStatus {
  const candidate = value as Partial<DeviceStatus> | null;
  return (
    typeof candidate === 'object' &&
    candidate !== null &&
    candidate.schema === 1 &&
    typeof candidate.state === 'string' &&
    Array.isArray(candidate.history) &&
    Array.isArray(candidate.failedTargets)
  );
}

/**
 * The status record: the one file that a refusal may change, with two plain files beside it for scripts that cannot
 * parse JSON: `update-state` (the state name) and `inconsistent` (the reason, present only while the device is
 * inconsistent). An unreadable record is moved aside to `.broken`, never trusted and never deleted, and ferry
 * carries on from an empty one.
 */
export class StatusFile {
  constructor(
    readonly file: string,
    readonly plainStateFile?: string,
    readonly plainInconsistentFile?: string,
  ) {}

  async load(): Promise<{ status: DeviceStatus; recovered?: string }> {
    let text: string | undefined;
    try {
      text = await fs.readFile(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { status: emptyStatus() };
      // Unreadable as a file at all (a directory, an I/O error): moved aside like a torn one.
    }
    try {
      const parsed: unknown = text === undefined ? undefined : JSON.parse(text);
      // Records written before a field existed get its empty value.
      if (looksLikeStatus(parsed)) return { status: { ...emptyStatus(), ...parsed } };
    } catch {
      // Falls through to the recovery below.
    }
    const aside = `${this.file}.broken`;
    await fs.rename(this.file, aside);
    return { status: emptyStatus(), recovered: `the status file was unreadable and was moved to ${aside}` };
  }

  async save(status: DeviceStatus): Promise<void> {
    await fs.mkdir(path.dirname(this.file), { recursive: true });
    await writeFileAtomic(this.file, `${JSON.stringify(status, null, 2)}\n`);
    if (this.plainStateFile !== undefined) await writeFileAtomic(this.plainStateFile, `${status.state}\n`);
    if (this.plainInconsistentFile !== undefined) {
      if (status.inconsistent !== null)
        await writeFileAtomic(this.plainInconsistentFile, `${status.inconsistent.reason}\n`);
      else await fs.rm(this.plainInconsistentFile, { force: true });
    }
  }
}
