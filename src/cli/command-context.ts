import { fstatSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { FerryError } from '../errors.js';
import { fanOut, jsonLinesProgress, type ProgressListener } from '../progress.js';
import { terminalProgress } from './progress-bars.js';
import type { CommandReport } from '../lifecycle/report.js';
import type { Io } from './output.js';

/** What each group of commands gets: where to print, and where to hand its one report. */
export interface CommandContext {
  readonly name: 'ferry' | 'aklite-offline';
  readonly io: Io;
  readonly setReport: (report: CommandReport, json: boolean) => void;
}

export const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export function wholeNumber(name: string, min: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) < min) {
      throw new FerryError('USAGE', `${name} must be a whole number, at least ${min} (got "${value}")`);
    }
    return Number(value);
  };
}

export const positiveInteger = (name: string) => wholeNumber(name, 1);

/** `bundle sign` for the command run as `ferry bundle sign …`: how the exit-code table and the path checks name it. */
export function commandPath(command: Command): string {
  const names: string[] = [];
  for (let current: Command | null = command; current?.parent; current = current.parent) names.unshift(current.name());
  return names.join(' ');
}

/** `--progress-fd N`: the number of a file descriptor the caller opened for us. */
export function progressFdOption(): Option {
  return new Option(
    '--progress-fd <n>',
    'write progress as JSON lines ({phase, bytes, total, target, app}) to this open file descriptor',
  ).argParser((value: string) => {
    const fd = wholeNumber('--progress-fd', 0)(value);
    try {
      fstatSync(fd);
    } catch {
      throw new FerryError('USAGE', `--progress-fd ${fd} is not an open file descriptor`);
    }
    return fd;
  });
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
