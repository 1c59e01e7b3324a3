import path from 'node:path';
import type { Command } from 'commander';
import { locateBundle } from '../../bundle/format/bundle-source.js';
import { checkStick } from '../../lifecycle/check-stick.js';
import type { CommandContext } from '../command-context.js';
import { configuredDevice, deviceOptions, type DeviceCommandOptions } from '../shared-options.js';

/** check (aklite-offline only): verify a bundle as install would and list its targets; nothing is written. */
export function registerCheckCommand(program: Command, context: CommandContext): void {
  deviceOptions(
    program
      .command('check')
      .description(
        'verify a bundle as install would and list its targets for this device, each with its commit and where its apps are; stores nothing of the stick',
      )
      .requiredOption(
        '-s, --src-dir <path>',
        'the bundle: a directory with tuf/, ostree_repo/ and apps/, a .tar or .zip of one, or an encrypted bundle (export --encrypt-to), which the device decrypts with its decryption key or a fleet key it holds',
      ),
  ).action(async (options: DeviceCommandOptions & { srcDir: string }) => {
    const device = await configuredDevice(options, context);
    // A path that is not a bundle is refused before anything is read from it.
    const { path: srcDir } = await locateBundle(path.resolve(options.srcDir));
    context.setReport(await checkStick(device, srcDir), options.json ?? false);
  });
}
