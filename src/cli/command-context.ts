import type { Command } from 'commander';
import { fanOut, jsonLinesProgress, type ProgressListener } from '../progress.js';
import { terminalProgress } from './progress-bars.js';
import type { CommandReport } from '../command-report.js';
import type { ExitCodeTable } from '../exit-codes.js';
import type { Io } from './output.js';

/** What each command gets: where to print, and where to hand its one report. */
export interface CommandContext {
  readonly name: 'ferry' | 'aklite-offline';
  readonly io: Io;
  readonly setReport: (report: CommandReport, json: boolean) => void;
  /** Once the device's configuration is read: the exit-code table it asks for, for whatever the command ends with. */
  readonly useExitCodes: (table: ExitCodeTable) => void;
}

/** `bundle sign` for the command run as `ferry bundle sign …`: how the exit-code table and the path checks name it. */
export function commandPath(command: Command): string {
  const names: string[] = [];
  for (let current: Command | null = command; current?.parent; current = current.parent) names.unshift(current.name());
  return names.join(' ');
}

/** Bars on a terminal and JSON lines on --progress-fd, as asked; stop() clears the bars before the result prints. */
export function progressFor(
  io: Io,
  options: { progressFd?: number; logLevel?: number },
): { listener?: ProgressListener; stop(): void } {
  // aklite-offline's --log-level 3 and up (warnings and worse) leaves the bars out, as it leaves out its info lines.
  const bars = io.progressStream && !quietAt(options.logLevel) ? terminalProgress(io.progressStream) : undefined;
  const listener = fanOut([
    bars?.listener,
    options.progressFd === undefined ? undefined : jsonLinesProgress(options.progressFd),
  ]);
  return { ...(listener ? { listener } : {}), stop: () => bars?.stop() };
}

/** aklite-offline's log levels: 0 trace, 1 debug, 2 info (the default), 3 warning, 4 error, 5 fatal. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warning', 'error', 'fatal'] as const;

/** Whether a --log-level leaves out what is only information: progress, and the human text beside --json. */
export function quietAt(logLevel: number | undefined): boolean {
  return (logLevel ?? 2) >= 3;
}
