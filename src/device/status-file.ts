import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { AppPin, StatusGoal } from '../tuf/target.js';
import type { GoalReached } from '../apps/device/status-goals.js';
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

/**
 * The states an install passes through before it records its update as pending. A record left in one of them
 * belongs to an install that is still running or stopped there: it says nothing of what the device runs.
 */
export const INSTALL_UNDER_WAY_STATES: ReadonlySet<UpdateState> = new Set(['QUEUED', 'VERIFYING', 'COPYING']);

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

/** The window in which the new apps must keep running; `boot` names the boot it began in (null in older records). */
export interface TestingWindow {
  readonly since: string;
  readonly until: string;
  /** After a power cut the apps were restarted, so a window from an earlier boot starts again. */
  readonly boot: string | null;
}

/** What every pending update records: the target, the rollback point and how the update completes. */
interface PendingBase {
  readonly target: TargetRef;
  /** What ran before the install: the rollback point if the new target fails. */
  readonly previous: TargetRef | null;
  readonly installedAt: string;
  /** How the update completes: after a reboot, or after an engine restart (only apps changed). */
  readonly completion: 'reboot' | 'restart-engine';
  readonly rootfsChanged: boolean;
}

/**
 * A pending update is in exactly one phase, so that no record can hold a combination that cannot happen (a testing
 * window on an install that never finished, a way back that is also a repair):
 * - deploying: recorded before the boot trial, the reboot marker and the deployment are written; a record still
 *   "deploying" after the install has stopped belongs to an interrupted install;
 * - staged: the install finished; the update waits for the reboot (or engine restart) and `run`;
 * - testing: `run` started the apps and their testing window runs;
 * - returning: the way back from a target whose apps failed on its new rootfs: `target` is the previous target the
 *   device returns to, `from` the one that failed; its own apps may already be in their window.
 * `repair` says the install repairs an inconsistent device with the same target.
 */
export type PendingUpdate =
  | (PendingBase & { readonly phase: 'deploying'; readonly repair: boolean })
  | (PendingBase & { readonly phase: 'staged'; readonly repair: boolean })
  | (PendingBase & { readonly phase: 'testing'; readonly repair: boolean; readonly window: TestingWindow })
  | {
      readonly phase: 'returning';
      readonly target: TargetRef;
      /** The target that failed, which the device leaves. */
      readonly previous: TargetRef;
      readonly from: TargetRef;
      readonly installedAt: string;
      readonly completion: 'reboot';
      readonly rootfsChanged: true;
      readonly window: TestingWindow | null;
    };

export type PendingPhase = PendingUpdate['phase'];

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
  /**
   * Each app's status goal and what it reached when `run` last looked, during and at the end of a testing window
   * (absent in records older than goals, null before any window).
   */
  readonly appGoals?: AppGoals | null;
}

export interface AppGoals {
  readonly target: string;
  readonly at: string;
  readonly apps: Readonly<Record<string, { readonly goal: StatusGoal; readonly reached: GoalReached }>>;
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

/** A pending update as records written before its phases existed hold it: the phase spread over optional fields. */
interface PendingWithOptionalFields {
  readonly target: TargetRef;
  readonly previous: TargetRef | null;
  readonly installedAt: string;
  readonly completion: 'reboot' | 'restart-engine';
  readonly rootfsChanged: boolean;
  readonly rollbackOf?: TargetRef;
  readonly testing?: { readonly since: string; readonly until: string; readonly boot?: string };
  readonly stage?: 'deploying' | 'staged';
  readonly repair?: boolean;
}

/**
 * Reads a pending update of either shape. An older record's optional fields name its phase: a way back
 * (`rollbackOf`), else an install that had not finished (`stage` "deploying"), else a testing window, else staged
 * (records older than `stage` were staged).
 */
export function migratePending(value: PendingUpdate | PendingWithOptionalFields | null): PendingUpdate | null {
  if (value === null || 'phase' in value) return value;
  const { target, previous, installedAt, completion, rootfsChanged } = value;
  const window =
    value.testing === undefined
      ? null
      : { since: value.testing.since, until: value.testing.until, boot: value.testing.boot ?? null };
  if (value.rollbackOf !== undefined) {
    return {
      phase: 'returning',
      target,
      previous: previous ?? value.rollbackOf,
      from: value.rollbackOf,
      installedAt,
      completion: 'reboot',
      rootfsChanged: true,
      window,
    };
  }
  const base = { target, previous, installedAt, completion, rootfsChanged, repair: value.repair === true };
  if (value.stage === 'deploying') return { ...base, phase: 'deploying' };
  if (window !== null) return { ...base, phase: 'testing', window };
  return { ...base, phase: 'staged' };
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
      if (looksLikeStatus(parsed)) {
        const pending = migratePending((parsed.pending as PendingUpdate | PendingWithOptionalFields | null) ?? null);
        return { status: { ...emptyStatus(), ...parsed, pending } };
      }
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
