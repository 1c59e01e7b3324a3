import { oneLine } from '../errors.js';
import { OUTCOMES } from '../exit-codes.js';
import type { CommandReport } from '../command-report.js';

export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
  /** A terminal to draw progress bars on; absent when stderr is not a TTY (a pipe, a file, a test). */
  readonly progressStream?: NodeJS.WriteStream | undefined;
}

export const processIo: Io = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  progressStream: process.stderr.isTTY ? process.stderr : undefined,
};

/**
 * Prints a report and returns its exit code. A failure is one line on stderr ("ferry: <reason>"), whatever else is
 * printed; with --json, stdout carries one JSON object with the same reason, and the human text goes to stderr.
 */
export function emitReport(io: Io, program: string, report: CommandReport, json: boolean): number {
  const info = OUTCOMES[report.outcome];
  const failed = info.kind === 'failure';
  if (json) {
    io.stdout(
      `${JSON.stringify({ outcome: report.outcome, exitCode: info.exitCode, meaning: info.meaning, next: info.next, message: report.message, ...(report.data ?? {}) }, null, 2)}\n`,
    );
    // The people watching still read what happened, on stderr, where it does not mix with the JSON.
    if (!failed) io.stderr(`${report.message}\n`);
  } else if (!failed) {
    io.stdout(`${report.message}\n`);
  }
  if (failed) io.stderr(`${program}: ${oneLine(report.message)}\n`);
  return info.exitCode;
}
