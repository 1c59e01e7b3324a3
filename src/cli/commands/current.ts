import type { Command } from 'commander';
import { describeCurrent } from '../../lifecycle/current-target.js';
import type { CommandContext } from '../command-context.js';
import { configuredDevice, deviceOptions, type DeviceCommandOptions } from '../shared-options.js';

/** current (aklite-offline only): the target the device runs, its ostree hash and its apps. */
export function registerCurrentCommand(program: Command, context: CommandContext): void {
  deviceOptions(
    program.command('current').description('show the target the device runs: its name, ostree hash and apps'),
  ).action(async (options: DeviceCommandOptions) => {
    context.setReport(await describeCurrent(await configuredDevice(options, context)), options.json ?? false);
  });
}
