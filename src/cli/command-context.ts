import { FerryError } from '../errors.js';
import { OUTCOMES } from '../exit-codes.js';
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

export function exitCodeTable(commands: readonly string[]): string {
  const rows = Object.values(OUTCOMES)
    .filter((info) => (info.commands as readonly string[]).some((command) => commands.includes(command)))
    .sort((a, b) => a.exitCode - b.exitCode)
    .map((info) => `  ${String(info.exitCode).padStart(3)}  ${info.meaning}`);
  return `\nExit codes (and 1 for an unexpected error, 2 for a bad command line):\n${rows.join('\n')}\n`;
}
