import type { Command } from 'commander';
import { fanOut, jsonLinesProgress, type ProgressListener } from '../progress.js';
import { terminalProgress } from './progress-bars.js';
import type { CommandReport } from '../command-report.js';
import type { Io } from './output.js';

/** What each command gets: where to print, and where to hand its one report. */
export interface CommandContext {
  readonly name: 'ferry' | 'aklite-offline';
  readonly io: Io;
  readonly setReport: (report: CommandReport, json: boolean) => void;
}

/** `bundle sign` for the command run as `ferry bundle sign …`: how the exit-code table and the path checks name it. */
export function commandPath(command: Command): string {
  const names: string[] = [];
  for (let current: Command | null = command; current?.parent; current = current.parent) names.unshift(current.name());
  return names.join(' ');
}

/** Bars on a terminal and JSON lines on --progress-fd, as asked; stop() clears the bars before the result prints. */
export function progressFor(io: Io, options: { progressFd?: number }): { listener?: ProgressListener; stop(): void } {
  const bars = io.progressStream ? terminalProgress(io.progressStream) : undefined;
  const listener = fanOut([
    bars?.listener,
    options.progressFd === undefined ? undefined : jsonLinesProgress(options.progressFd),
  ]);
  return { ...(listener ? { listener } : {}), stop: () => bars?.stop() };
}
