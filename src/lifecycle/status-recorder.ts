import type { CommandReport } from '../command-report.js';
import { describeCause } from '../errors.js';
import { exitCodeIn } from '../exit-codes.js';
import type { Device } from '../device/device.js';
import { appendHistory, type DeviceStatus, type Progress, type UpdateState } from '../device/status-file.js';

export type StatusChanges = Partial<Omit<DeviceStatus, 'schema' | 'history' | 'state' | 'reason' | 'progress' | 'log'>>;

/** How many lines of a command's activity a WONTGO or ERROR keeps. */
export const LOG_SNIPPET_LINES = 30;

/**
 * Writes one command's way through the update states into the status record: each phase as it starts (with its
 * progress), then how it ended, with a history line. A WONTGO or ERROR keeps the last lines of what the command did,
 * and the causes of its error, as a log snippet. A refusal changes nothing else on the device: this is the only
 * thing a WONTGO writes.
 */
export class StatusRecorder {
  private readonly lines: string[] = [];
  /** Warnings (a callback program that failed): the record's log keeps them even when the command succeeds. */
  private readonly warnings: string[] = [];
  /** Set once finish() or note() wrote the command's end. */
  private ended = false;
  private lastProgressWrite = 0;
  /** Set by keepUpdateState(): this command's phases and end are not the device's update. */
  private updateStateKept = false;

  constructor(
    private readonly device: Device,
    private current: DeviceStatus,
    readonly command: string,
  ) {}

  get status(): DeviceStatus {
    return this.current;
  }

  log(line: string): void {
    this.lines.push(`${new Date().toISOString()} ${line}`);
    if (this.lines.length > 200) this.lines.shift();
  }

  /**
   * A line logged as a warning: it stays in the record's log however the command ends, added to the record at once
   * when the command has already written its end.
   */
  async warn(line: string): Promise<void> {
    this.log(`warning: ${line}`);
    const stamped = this.lines.at(-1)!;
    this.warnings.push(stamped);
    if (!this.ended || this.updateStateKept) return;
    this.current = { ...this.current, log: [...this.current.log, stamped].slice(-LOG_SNIPPET_LINES) };
    await this.device.statusFile.save(this.current);
  }

  /**
   * From now on this command leaves the update state, its reason, progress, log and last error as they are: another
   * update is pending, and the state describes that one. Its phases are only logged, and its end (a refusal) becomes
   * a history line; the command's own output says the rest.
   */
  keepUpdateState(): void {
    this.updateStateKept = true;
  }

  /** Enters a phase (QUEUED, VERIFYING, COPYING, TESTING…): no history line, only the state as it is now. */
  async phase(
    state: UpdateState,
    reason: string,
    progress: Progress | null = null,
    changes: StatusChanges = {},
  ): Promise<void> {
    this.log(
      `${state}: ${reason}${progress ? ` (${progress.value}${progress.unit === 'percent' ? '%' : ' s left'})` : ''}`,
    );
    if (this.updateStateKept) return;
    this.current = { ...this.current, ...changes, state, reason, progress, log: [] };
    await this.device.statusFile.save(this.current);
    this.lastProgressWrite = Date.now();
  }

  /** What each app reached at the last look: written with the next progress or end, not on its own. */
  goals(goals: NonNullable<DeviceStatus['appGoals']>): void {
    if (this.updateStateKept) return;
    this.current = { ...this.current, appGoals: goals };
  }

  /** A progress update within the current phase, written at most once a second (and always at the end). */
  async progress(progress: Progress, final = false): Promise<void> {
    if (this.updateStateKept) return;
    if (!final && Date.now() - this.lastProgressWrite < 1000) return;
    this.current = { ...this.current, progress };
    await this.device.statusFile.save(this.current);
    this.lastProgressWrite = Date.now();
  }

  async finish(
    entry: { state: UpdateState; report: CommandReport; target?: string; cause?: unknown; progress?: Progress },
    changes: StatusChanges = {},
  ): Promise<DeviceStatus> {
    if (this.updateStateKept) return this.note(entry);
    this.ended = true;
    const at = new Date().toISOString();
    const exitCode = exitCodeIn(this.device.config.exitCodes, entry.report.outcome);
    const failed = entry.state === 'WONTGO' || entry.state === 'ERROR';
    this.log(`${entry.state}: ${entry.report.message} (exit ${exitCode})`);
    const snippet = failed
      ? [...this.lines, ...causesOf(entry.cause)].slice(-LOG_SNIPPET_LINES)
      : this.warnings.slice(-LOG_SNIPPET_LINES);
    this.current = {
      ...this.current,
      ...changes,
      state: entry.state,
      reason: entry.report.message,
      progress: entry.progress ?? null,
      log: snippet,
      lastError: failed
        ? { outcome: entry.report.outcome, exitCode, message: entry.report.message, at, log: snippet }
        : 'lastError' in changes
          ? (changes.lastError ?? null)
          : this.current.lastError,
      history: this.historyWith(at, entry.state, entry),
    };
    await this.device.statusFile.save(this.current);
    return this.current;
  }

  /**
   * Ends a command that does not move the device's update: a history line, and nothing else of the update's state
   * changes. The line carries `entry.state` (what became of this command: WONTGO for a refusal), or else the state the
   * device stays in. With `lastError`, a failure is kept as the last error too, with its log snippet.
   */
  async note(
    entry: { report: CommandReport; state?: UpdateState; target?: string; cause?: unknown },
    options: { lastError?: boolean } = {},
  ): Promise<DeviceStatus> {
    this.ended = true;
    const at = new Date().toISOString();
    const exitCode = exitCodeIn(this.device.config.exitCodes, entry.report.outcome);
    this.log(`${entry.report.message} (exit ${exitCode})`);
    const snippet = [...this.lines, ...causesOf(entry.cause)].slice(-LOG_SNIPPET_LINES);
    this.current = {
      ...this.current,
      ...(options.lastError
        ? { lastError: { outcome: entry.report.outcome, exitCode, message: entry.report.message, at, log: snippet } }
        : {}),
      history: this.historyWith(at, entry.state ?? this.current.state, entry),
    };
    await this.device.statusFile.save(this.current);
    return this.current;
  }
  /** The history with one more line: what became of this command (`state`), its outcome and target. */
  private historyWith(
    at: string,
    state: UpdateState,
    entry: { report: CommandReport; target?: string },
  ): DeviceStatus['history'] {
    return appendHistory(this.current, {
      at,
      command: this.command,
      state,
      outcome: entry.report.outcome,
      exitCode: exitCodeIn(this.device.config.exitCodes, entry.report.outcome),
      ...(entry.target === undefined ? {} : { target: entry.target }),
      message: entry.report.message,
    });
  }
}

/** The chain of causes behind an error, one line each: the tool's stderr is usually where the answer is. */
function causesOf(error: unknown): string[] {
  const lines: string[] = [];
  let cause = error instanceof Error ? error.cause : undefined;
  while (cause !== undefined && lines.length < 5) {
    lines.push(`  caused by: ${describeCause(cause)}`);
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return lines;
}
