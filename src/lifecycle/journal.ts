import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describeCause } from '../errors.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { faultPointName, type FaultMoment, type StepName } from './steps.js';

/**
 * The journal of the device-changing steps (`<storage>/ferry/journal`): one JSON line per event, each appended and
 * fsynced before the process goes on. A step writes its intent before it acts and its result after, so after a
 * power cut the last line tells which step was under way and whether it had finished. A command that only reads or
 * refuses never writes here: the journal starts at its first step.
 */
export interface JournalEntry {
  readonly at: string;
  readonly pid: number;
  readonly command: string;
  readonly event: 'begin' | 'intent' | 'done' | 'failed' | 'end';
  readonly step?: string;
  readonly detail?: string;
}

/** The step a command was in when it stopped without an end line. */
export interface InterruptedCommand {
  readonly command: string;
  readonly pid: number;
  readonly step: string | null;
  /** Whether the step had acted (its result line is there) when the command stopped. */
  readonly stepDone: boolean;
  readonly at: string;
}

/** Lines kept from earlier commands, so that the journal stays small. */
const KEPT_LINES = 300;

/** `FERRY_CRASH_AT` kills the process there (a power cut); `FERRY_PAUSE_AT` stops it until SIGCONT (tests use it). */
export function injectFault(step: StepName, moment: FaultMoment, env: NodeJS.ProcessEnv = process.env): void {
  const point = faultPointName(step, moment);
  if (env['FERRY_CRASH_AT'] === point) process.kill(process.pid, 'SIGKILL');
  if (env['FERRY_PAUSE_AT'] === point) process.kill(process.pid, 'SIGSTOP');
}

export function parseJournal(text: string): JournalEntry[] {
  const entries: JournalEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const entry = JSON.parse(line) as JournalEntry;
      if (typeof entry === 'object' && entry !== null && typeof entry.event === 'string') entries.push(entry);
    } catch {
      // A line torn by a power cut in the middle of its append: the lines before it still tell the story.
    }
  }
  return entries;
}

/** The last command in the journal, if it began and never ended. */
export function interruptedCommand(entries: readonly JournalEntry[]): InterruptedCommand | null {
  const begin = entries.map((entry) => entry.event).lastIndexOf('begin');
  if (begin < 0) return null;
  const tail = entries.slice(begin);
  if (tail.some((entry) => entry.event === 'end')) return null;
  const last = [...tail].reverse().find((entry) => entry.step !== undefined);
  return {
    command: tail[0]!.command,
    pid: tail[0]!.pid,
    step: last?.step ?? null,
    stepDone: last?.event === 'done',
    at: (last ?? tail[0]!).at,
  };
}

export class Journal {
  private begun = false;

  private constructor(
    readonly file: string,
    readonly command: string,
    private readonly earlier: readonly JournalEntry[],
    /** The command before this one, if it stopped mid-way. */
    readonly interrupted: InterruptedCommand | null,
  ) {}

  static async open(file: string, command: string): Promise<Journal> {
    let text = '';
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (error) {
      // A journal that cannot be read is moved aside, never a reason to refuse: the status record is the truth.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        await fs.rename(file, `${file}.broken`).catch(() => undefined);
        await fs.rm(file, { recursive: true, force: true }).catch(() => undefined);
      }
    }
    const entries = parseJournal(text);
    return new Journal(file, command, entries, interruptedCommand(entries));
  }

  /** One line for the status log about the command that was interrupted, if one was. */
  describeInterrupted(): string | null {
    const interrupted = this.interrupted;
    if (interrupted === null) return null;
    const where =
      interrupted.step === null
        ? 'before its first step'
        : `${interrupted.stepDone ? 'after' : 'during'} step ${interrupted.step}`;
    return `the previous ${interrupted.command} (pid ${interrupted.pid}) stopped ${where}, at ${interrupted.at}`;
  }

  /** Runs one device-changing step between its intent and its result, with its fault-injection points. */
  async step<T>(step: StepName, action: () => Promise<T>, detail?: string): Promise<T> {
    await this.append({ event: 'intent', step, ...(detail === undefined ? {} : { detail }) });
    injectFault(step, 'intent');
    let result: T;
    try {
      result = await action();
    } catch (error) {
      // Best effort: on a full disk the line may not fit, and the step's own error is the one to report.
      await this.append({ event: 'failed', step, detail: describeCause(error) }).catch(() => undefined);
      throw error;
    }
    injectFault(step, 'done');
    await this.append({ event: 'done', step });
    return result;
  }

  /** Closes the command's record, if it wrote one. */
  async end(outcome: string): Promise<void> {
    if (!this.begun) return;
    await this.append({ event: 'end', detail: outcome }).catch(() => undefined);
  }

  private async append(entry: Omit<JournalEntry, 'at' | 'pid' | 'command'>): Promise<void> {
    if (!this.begun) await this.begin();
    await appendDurably(this.file, this.line(entry));
  }

  private line(entry: Omit<JournalEntry, 'at' | 'pid' | 'command'>): string {
    return `${JSON.stringify({ at: new Date().toISOString(), pid: process.pid, command: this.command, ...entry })}\n`;
  }

  /** Starts a fresh journal that keeps the tail of the earlier ones (an interrupted command's lines above all). */
  private async begin(): Promise<void> {
    this.begun = true;
    const kept = this.earlier.slice(-KEPT_LINES).map((entry) => `${JSON.stringify(entry)}\n`);
    await fs.mkdir(path.dirname(this.file), { recursive: true });
    await writeFileAtomic(this.file, [...kept, this.line({ event: 'begin' })].join(''));
  }
}

async function appendDurably(file: string, line: string): Promise<void> {
  const handle = await fs.open(file, 'a');
  try {
    await handle.write(line);
    await handle.sync();
  } finally {
    await handle.close();
  }
}
