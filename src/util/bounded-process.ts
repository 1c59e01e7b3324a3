import { spawn } from 'node:child_process';

/** How one run of a device-side program (a health check, the callback program) ended. */
export interface BoundedRun {
  /** The exit code; null when a signal ended it, or it never ran. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** It outlived its timeout, and its process group was killed. */
  readonly timedOut: boolean;
  /** Why it could not be started at all (no such file, not executable, …). */
  readonly spawnError?: string;
  /** The end of what it wrote, stdout and stderr together. */
  readonly output: string;
}

export interface BoundedRunOptions {
  readonly env: NodeJS.ProcessEnv;
  readonly timeoutMs: number;
  /** How much of its output is kept in memory while it runs: a chatty program cannot exhaust it. */
  readonly outputBytes: number;
  /**
   * Kill what it started in its process group once it exits (a health check's helpers), or leave them (a callback may
   * start something that is meant to outlive it). At the timeout the whole group is killed either way.
   */
  readonly killGroupOnExit: boolean;
  readonly cwd?: string;
}

/** After the program exits, how long its pipes may stay open (held by a process it left behind) before they are cut. */
const PIPE_DRAIN_MS = 200;

/**
 * Runs a program in a process group of its own, with a timeout. It never throws: every way it can end is in the
 * result. The run ends with the program's own exit, not with processes it left behind.
 */
export function runBounded(file: string, options: BoundedRunOptions): Promise<BoundedRun> {
  return new Promise((resolve) => {
    let output = '';
    let timedOut = false;
    let settled = false;
    let exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
    const child = spawn(file, [], {
      cwd: options.cwd ?? '/',
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: options.env,
    });
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-options.outputBytes);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const killGroup = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // The group is gone already.
      }
    };
    const finish = (result: BoundedRun) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.stdout.destroy();
      child.stderr.destroy();
      resolve(result);
    };
    const finishExited = () => {
      if (exited !== null) finish({ ...exited, timedOut, output });
    };
    const timer = setTimeout(() => {
      timedOut = exited === null;
      killGroup();
      finishExited();
    }, options.timeoutMs);
    child.once('error', (error) =>
      finish({ code: null, signal: null, timedOut: false, spawnError: error.message, output }),
    );
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      if (options.killGroupOnExit || timedOut) killGroup();
      // Normally the pipes close at once ('close' below); a process left holding them must not hold the run.
      setTimeout(finishExited, PIPE_DRAIN_MS).unref();
    });
    child.once('close', finishExited);
  });
}

/** The last `count` non-empty lines of a program's output. */
export function lastLines(text: string, count: number): string[] {
  return text
    .split('\n')
    .map((line) => line.trimEnd())
    .filter((line) => line.trim() !== '')
    .slice(-count);
}
