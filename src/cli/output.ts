import { oneLine } from '../errors.js';
import { OUTCOMES, exitCodeIn, type ExitCodeTable } from '../exit-codes.js';
import type { CommandReport } from '../command-report.js';

export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
  /** A terminal to draw progress bars on; absent when stderr is not a TTY (a pipe, a file, a test). */
  readonly progressStream?: NodeJS.WriteStream | undefined;
}

/**
 * A reader that goes away (`ferry … | head`) closes the pipe under stdout or stderr; node then raises EPIPE as an
 * unhandled error and dies with a stack trace, part-way through whatever the command was doing. The command instead
 * finishes its work and exits with its own code; only the text nobody reads any more is dropped.
 */
export function keepRunningWhenReadersLeave(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
    });
  }
}

export const processIo: Io = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  progressStream: process.stderr.isTTY ? process.stderr : undefined,
};

/** How the result is printed, beyond the report itself. */
export interface EmitOptions {
  readonly json: boolean;
  /** The exit-code table the device's configuration asks for (ferry's documented one until it is read). */
  readonly table?: ExitCodeTable;
  /** With --json, leave out the human text on stderr (aklite-offline's --log-level 3 and up: warnings and worse). */
  readonly quiet?: boolean;
}

/**
 * Prints a report and returns its exit code. A failure is one line on stderr ("ferry: <reason>"), whatever else is
 * printed; with --json, stdout carries one JSON object with the same reason, and the human text goes to stderr.
 */
export function emitReport(io: Io, program: string, report: CommandReport, options: EmitOptions): number {
  const info = OUTCOMES[report.outcome];
  const failed = info.kind === 'failure';
  const exitCode = exitCodeIn(options.table ?? 'ferry', report.outcome);
  if (options.json) {
    io.stdout(
      `${JSON.stringify({ outcome: report.outcome, exitCode, meaning: info.meaning, next: info.next, message: report.message, ...(report.data ?? {}) }, null, 2)}\n`,
    );
    // The people watching still read what happened, on stderr, where it does not mix with the JSON.
    if (!failed && options.quiet !== true) io.stderr(`${report.message}\n`);
  } else if (!failed) {
    io.stdout(`${report.message}\n`);
  }
  if (failed) io.stderr(`${program}: ${oneLine(report.message)}\n`);
  return exitCode;
}
