import { oneLine } from '../errors.js';
import { OUTCOMES } from '../exit-codes.js';
import type { CommandReport } from '../lifecycle/report.js';

export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
}

export const processIo: Io = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

/**
 * Prints a report and returns its exit code. A failure is one line on stderr ("ferry: <reason>"), whatever else is
 * printed; with --json, stdout carries one JSON object with the same reason.
 */
export function emitReport(io: Io, program: string, report: CommandReport, json: boolean): number {
  const info = OUTCOMES[report.outcome];
  const failed = info.kind === 'failure';
  if (json) {
    io.stdout(
      `${JSON.stringify({ outcome: report.outcome, exitCode: info.exitCode, meaning: info.meaning, next: info.next, message: report.message, ...(report.data ?? {}) }, null, 2)}\n`,
    );
  } else if (!failed) {
    io.stdout(`${report.message}\n`);
  }
  if (failed) io.stderr(`${program}: ${oneLine(report.message)}\n`);
  return info.exitCode;
}
