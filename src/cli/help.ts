import type { Command } from 'commander';
import { OUTCOMES, type OutcomeInfo } from '../exit-codes.js';
import { commandPath } from './command-context.js';

/**
 * Whether the exit-code table assigns an outcome to a command: `*` is every command, a command's full name
 * (`device provision`) that command, and a group's name (`sim`) every command of the group.
 */
export function assignedTo(info: OutcomeInfo, command: string): boolean {
  return info.commands.some((entry) => entry === '*' || entry === command || command.startsWith(`${entry} `));
}

/** The rows of the exit-code table a command can end with, in the order of their codes. */
export function outcomesOf(command: string): OutcomeInfo[] {
  return Object.values(OUTCOMES as Record<string, OutcomeInfo>)
    .map((info, order) => ({ info, order }))
    .filter(({ info }) => assignedTo(info, command))
    .sort((a, b) => a.info.exitCode - b.info.exitCode || a.order - b.order)
    .map(({ info }) => info);
}

export function exitCodeSection(command: string): string {
  const outcomes = outcomesOf(command);
  const rows = outcomes.map((info) => `  ${String(info.exitCode).padStart(3)}  ${info.meaning}`);
  // A device whose configuration asks for aktualizr-lite's codes answers these instead (see exit-codes.ts).
  const differing = outcomes.filter((info) => info.aktualizrLite !== undefined);
  const akliteRows = differing.map(
    (info) => `  ${String(info.aktualizrLite).padStart(3)} instead of ${info.exitCode}: ${info.meaning}`,
  );
  const aklite =
    differing.length === 0
      ? ''
      : `\nWith [ferry] exit_codes = "aktualizr-lite" in the device configuration, today's aktualizr-lite codes:\n${akliteRows.join('\n')}\n`;
  return `\nExit codes:\n${rows.join('\n')}\n${aklite}`;
}

/** The commands that run something (not the groups that only hold others), wherever they sit. */
export function leafCommands(command: Command): Command[] {
  return command.commands.flatMap((sub) => (sub.commands.length === 0 ? [sub] : leafCommands(sub)));
}

/** Every command's --help ends with the exit codes the table assigns it, so that help and table cannot disagree. */
export function addExitCodeSections(program: Command): void {
  for (const command of leafCommands(program)) command.addHelpText('after', exitCodeSection(commandPath(command)));
}
