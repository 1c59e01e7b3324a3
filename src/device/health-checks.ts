import { spawn } from 'node:child_process';
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import { describeCause } from '../errors.js';

/**
 * Device health checks, in greenboot's pattern: the executables in one directory are run in name order, and any that
 * exits non-zero (or outlives its timeout) fails the update. Each sees the target and the phase in its environment.
 */

/**
 * When the checks run: once the apps reached their status goals, and again at the end of the testing window (an
 * update without apps runs them once, at `window-end`, before it commits).
 */
export type CheckPhase = 'goals-reached' | 'window-end';

export interface HealthChecksResult {
  readonly ok: boolean;
  /** What was run or skipped, one line each, for the command's log. */
  readonly log: readonly string[];
  /** The first check that failed: "status goal not reached: <check>: <its last line>". */
  readonly failure?: string;
  /** The last lines the failing check wrote, for the log snippet. */
  readonly output?: readonly string[];
}

/** The small interface the lifecycle runs the checks through (the fake device stubs it). */
export interface HealthChecksPort {
  run(phase: CheckPhase, target: { readonly name: string; readonly version: string }): Promise<HealthChecksResult>;
}

/** How many of a failing check's last lines the log snippet keeps. */
export const CHECK_OUTPUT_LINES = 10;
/** A check's output kept in memory while it runs: a chatty check cannot exhaust it. */
const OUTPUT_BYTES = 64 * 1024;

export class HealthCheckDir implements HealthChecksPort {
  constructor(
    readonly dir: string,
    readonly timeoutMs: number,
  ) {}

  async run(phase: CheckPhase, target: { name: string; version: string }): Promise<HealthChecksResult> {
    let names: string[];
    try {
      names = (await fs.readdir(this.dir)).sort();
    } catch (error) {
      // No directory: no checks. One that cannot be listed may hide checks that would fail: that fails too.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { ok: true, log: [] };
      return {
        ok: false,
        log: [],
        failure: `status goal not reached: the health checks in ${this.dir} cannot be listed: ${describeCause(error)}`,
      };
    }
    const log: string[] = [];
    for (const name of names) {
      if (name.startsWith('.')) continue;
      const file = path.join(this.dir, name);
      const stat = await fs.stat(file).catch(() => null);
      if (stat === null || !stat.isFile()) {
        log.push(`health check ${name} skipped: not a regular file`);
        continue;
      }
      try {
        await fs.access(file, constants.X_OK);
      } catch {
        // As greenboot does: a script someone left without its x bit is skipped, and the log says so.
        log.push(`health check ${name} skipped: not executable`);
        continue;
      }
      const result = await runCheck(file, this.timeoutMs, {
        FERRY_TARGET_NAME: target.name,
        FERRY_TARGET_VERSION: target.version,
        FERRY_PHASE: phase,
        FERRY_CHECK_TIMEOUT_SECONDS: String(Math.round(this.timeoutMs / 1000)),
      });
      const lines = lastLines(result.output, CHECK_OUTPUT_LINES);
      const last = lines.at(-1);
      if (result.timedOut || result.code !== 0) {
        const why = result.timedOut
          ? `timed out after ${Math.round(this.timeoutMs / 1000)} s and was killed${last === undefined ? '' : `; last line: ${last}`}`
          : (last ?? (result.code === null ? `killed by ${result.signal}` : `exit code ${result.code}`));
        return {
          ok: false,
          log: [...log, `health check ${name} (${phase}) failed`],
          failure: `status goal not reached: ${name}: ${why}`,
          output: lines,
        };
      }
      log.push(`health check ${name} (${phase}) passed`);
    }
    return { ok: true, log };
  }
}

interface CheckRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly timedOut: boolean;
  readonly output: string;
}

/**
 * Runs one check in a process group of its own, stdout and stderr together. At the timeout the whole group is
 * killed, so that a check's children do not outlive it.
 */
function runCheck(file: string, timeoutMs: number, env: Record<string, string>): Promise<CheckRun> {
  return new Promise((resolve) => {
    let output = '';
    let timedOut = false;
    const child = spawn(file, [], {
      cwd: '/',
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    const take = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-OUTPUT_BYTES);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    const killGroup = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // The group is gone already.
      }
    };
    let exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
    let settled = false;
    const done = (code: number | null, signal: NodeJS.Signals | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ code, signal, timedOut, output });
    };
    // A process the check left behind (one that left its group, too) may hold the pipes open: what was read is kept.
    const stopReading = () => {
      child.stdout.destroy();
      child.stderr.destroy();
      if (exited !== null) done(exited.code, exited.signal);
    };
    const timer = setTimeout(() => {
      if (exited === null) timedOut = true;
      killGroup();
      if (exited !== null) stopReading();
    }, timeoutMs);
    child.on('error', (error) => {
      output += `${error.message}\n`;
      exited = { code: 127, signal: null };
      stopReading();
    });
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      // Whatever the check started in its group goes with it.
      killGroup();
      if (timedOut) stopReading();
    });
    child.on('close', (code, signal) => done(code, signal));
  });
}

function lastLines(text: string, count: number): string[] {
  return text
    .split('\n')
    .map((line) => line.trimEnd())
    .filter((line) => line !== '')
    .slice(-count);
}
