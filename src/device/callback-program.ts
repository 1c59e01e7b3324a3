import { existsSync } from 'node:fs';
import { lastLines, runBounded } from '../util/bounded-process.js';

/**
 * The events an update calls the callback program at, by aktualizr-lite's names. install-final-post is ferry's own:
 * aktualizr-lite reports the end of a finished update as a second install-post.
 */
export const CALLBACK_EVENTS = [
  'check-for-update-pre',
  'check-for-update-post',
  'download-pre',
  'download-post',
  'install-pre',
  'install-post',
  'install-final-pre',
  'install-final-post',
] as const;

export type CallbackEvent = (typeof CALLBACK_EVENTS)[number];

/** One call: the event, the targets it concerns, and its result (none for a -pre event). */
export interface CallbackCall {
  readonly event: CallbackEvent;
  /** The target the device runs, by name; null when the device does not know it. */
  readonly currentTargetName: string | null;
  /** The target being checked, downloaded, installed or finalized; null when there is none (yet). */
  readonly installTargetName: string | null;
  /** OK, NEEDS_COMPLETION, FAILED or "FAILED: <reason>"; absent for a -pre event. */
  readonly result?: string;
}

/** The callback program as the lifecycle sees it: a call never throws; what went wrong comes back as one line. */
export interface CallbackPort {
  call(call: CallbackCall): Promise<string | undefined>;
}

/** The variables ferry sets, and removes from what the callback inherits when it has no value for them. */
const CALLBACK_VARIABLES = ['MESSAGE', 'CURRENT_TARGET', 'CURRENT_TARGET_NAME', 'INSTALL_TARGET_NAME', 'RESULT'];

/** How much of a failing callback's output is kept to say why it failed. */
const OUTPUT_KEPT_BYTES = 4096;

export interface CallbackProgramOptions {
  /** `[pacman] callback_program`; undefined: no callbacks. */
  readonly program: string | undefined;
  readonly timeoutMs: number;
  /** Handed to the program as CURRENT_TARGET: the file that names the target the device runs. */
  readonly currentTargetFile: string;
  /** Where a failing callback is reported at once (stderr), besides the line returned to the lifecycle. */
  readonly warn?: (line: string) => void;
}

/**
 * The configured callback program, run at each step of an update with aktualizr-lite's environment. It only
 * informs: a callback that fails, crashes, cannot be run or outlives its timeout (then it is killed with everything
 * it started) is reported, and the update goes on as if it had succeeded.
 */
export class CallbackProgram implements CallbackPort {
  /** aktualizr-lite checks the file once and turns callbacks off when it is missing; so does ferry, saying so once. */
  private missing: boolean;
  private missingReported = false;

  constructor(private readonly options: CallbackProgramOptions) {
    this.missing = options.program !== undefined && !existsSync(options.program);
  }

  async call(call: CallbackCall): Promise<string | undefined> {
    const { program } = this.options;
    if (program === undefined) return undefined;
    if (this.missing) {
      if (this.missingReported) return undefined;
      this.missingReported = true;
      return this.report(`callback_program ${program} does not exist: no callbacks are called`);
    }
    const problem = await this.run(program, call);
    return problem === undefined ? undefined : this.report(`callback ${call.event}: ${program} ${problem}`);
  }

  private report(line: string): string {
    this.options.warn?.(line);
    return line;
  }

  private environment(call: CallbackCall): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const name of CALLBACK_VARIABLES) delete env[name];
    env['MESSAGE'] = call.event;
    env['CURRENT_TARGET'] = this.options.currentTargetFile;
    if (call.currentTargetName !== null) env['CURRENT_TARGET_NAME'] = call.currentTargetName;
    if (call.installTargetName !== null) env['INSTALL_TARGET_NAME'] = call.installTargetName;
    if (call.result !== undefined && call.result !== '') env['RESULT'] = call.result;
    return env;
  }

  /** Runs the program once; undefined when it exited 0, else what went wrong. */
  private async run(program: string, call: CallbackCall): Promise<string | undefined> {
    // A callback may start something meant to outlive it: only the timeout kills its process group.
    const result = await runBounded(program, {
      env: this.environment(call),
      timeoutMs: this.options.timeoutMs,
      outputBytes: OUTPUT_KEPT_BYTES,
      killGroupOnExit: false,
      cwd: process.cwd(),
    });
    if (result.spawnError !== undefined) return `could not be run: ${result.spawnError}`;
    if (result.timedOut) return `did not finish within ${this.options.timeoutMs / 1000} s and was killed`;
    if (result.code === 0) return undefined;
    const last = lastLines(result.output, 1)[0]?.trim() ?? '';
    const how = result.signal !== null ? `was killed by ${result.signal}` : `exited ${result.code}`;
    return last === '' ? how : `${how}: ${last}`;
  }
}
