import type { Command } from 'commander';
import { deviceStatus } from '../../lifecycle/status.js';
import type { CommandContext } from '../command-context.js';
import { configuredDevice, deviceOptions, type DeviceCommandOptions } from '../shared-options.js';

/** status: the booted and pending targets of this device, its update state and its last error. */
export function registerStatusCommand(program: Command, context: CommandContext): void {
  deviceOptions(
    program
      .command('status')
      .description(
        'show the booted and pending targets, the update state, the last error, and each app with its status goal and what it reached',
      ),
  ).action(async (options: DeviceCommandOptions) => {
    context.setReport(await deviceStatus(await configuredDevice(options, context)), options.json ?? false);
  });
}
