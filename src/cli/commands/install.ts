import path from 'node:path';
import type { Command } from 'commander';
import { locateBundle } from '../../bundle/format/bundle-source.js';
import { withDeviceLock } from '../../device/lock.js';
import { installFromBundle } from '../../lifecycle/install.js';
import { errorReport } from '../../command-report.js';
import { progressFor, type CommandContext } from '../command-context.js';
import { reportToMedia } from '../report-to-media.js';
import { configuredDevice, deviceOptions, progressFdOption, type DeviceCommandOptions } from '../shared-options.js';

/** install (also under aklite-offline): verify a bundle and stage its target on this device. */
export function registerInstallCommand(program: Command, context: CommandContext): void {
  deviceOptions(
    program
      .command('install')
      .description('verify a bundle and stage its target; the device runs it after a reboot and `run`')
      .requiredOption(
        '-s, --src-dir <path>',
        'the bundle: a directory with tuf/, ostree_repo/ and apps/, a .tar or .zip of one, or an encrypted bundle (export --encrypt-to), which the device decrypts with its decryption key or a fleet key it holds',
      )
      .option('-t, --target <name>', 'install this target from the bundle instead of the highest version')
      .option(
        '-f, --force',
        'install even a lower version (downgrade); on the target the device runs, sync its apps again',
      ),
  )
    .addOption(progressFdOption())
    .action(
      async (
        options: DeviceCommandOptions & {
          srcDir: string;
          target?: string;
          force?: boolean;
          progressFd?: number;
          logLevel?: number;
        },
      ) => {
        const target = await configuredDevice(options, context);
        // A path that is not a bundle is refused before anything is written, on the device or beside that path.
        const { path: srcDir, media } = await locateBundle(path.resolve(options.srcDir));
        const progress = progressFor(context.io, options);
        // The report goes back to the media only once it is known to hold this factory's bundle.
        let bundleVerified = false;
        const report = await withDeviceLock(target.paths.volatileDir, 'install', () =>
          installFromBundle(target, {
            srcDir,
            targetName: options.target,
            force: options.force ?? false,
            media,
            onBundleVerified: () => {
              bundleVerified = true;
            },
            progress: progress.listener,
          }),
        )
          .catch(errorReport)
          .finally(() => progress.stop());
        context.setReport(
          bundleVerified ? await reportToMedia(context, target, 'install', report, media) : report,
          options.json ?? false,
        );
      },
    );
}
