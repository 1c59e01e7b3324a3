import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import { describeCause } from '../errors.js';
import { lastLines, runBounded } from '../util/bounded-process.js';

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
      // Whatever the check started in its process group goes with it, at its exit or at the timeout.
      const result = await runBounded(file, {
        env: {
          ...process.env,
          FERRY_TARGET_NAME: target.name,
          FERRY_TARGET_VERSION: target.version,
          FERRY_PHASE: phase,
          FERRY_CHECK_TIMEOUT_SECONDS: String(Math.round(this.timeoutMs / 1000)),
        },
        timeoutMs: this.timeoutMs,
        outputBytes: OUTPUT_BYTES,
        killGroupOnExit: true,
      });
      const lines = lastLines(
        result.spawnError === undefined ? result.output : `${result.output}\n${result.spawnError}`,
        CHECK_OUTPUT_LINES,
      );
      const last = lines.at(-1);
      if (result.timedOut || result.code !== 0 || result.spawnError !== undefined) {
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
