import path from 'node:path';
import type { Command } from 'commander';
import { locateBundle } from '../../bundle/bundle-source.js';
import { loadDeviceConfig } from '../../device/config.js';
import { openDevice } from '../../device/device.js';
import { withDeviceLock } from '../../device/lock.js';
import { installFromBundle } from '../../lifecycle/install.js';
import { errorReport } from '../../lifecycle/report.js';
import { runPending } from '../../lifecycle/run.js';
import { deviceStatus } from '../../lifecycle/status.js';
import { lastMediaOf } from '../../reports/write-report.js';
import { collect, progressFdOption, progressFor, type CommandContext } from '../command-context.js';
import { reportToMedia } from './reports.js';

/** How a `run` with no update pending ends. */
const NO_UPDATE_PENDING: ReadonlySet<string> = new Set(['NOTHING_PENDING', 'APPS_RESTORED', 'APPS_RESTORE_FAILED']);

interface DeviceCommandOptions {
  config?: string[];
  json?: boolean;
}

/** install, run (both also under aklite-offline) and status: the commands that act on this device. */
export function registerDeviceCommands(program: Command, context: CommandContext): void {
  const { name, setReport } = context;
  const deviceOptions = (command: Command): Command =>
    command
      .option(
        '-c, --config <file|dir>',
        'configuration file or directory (repeatable; default: the sota.toml locations aktualizr-lite reads)',
        collect,
      )
      .option('--json', 'print the result as one JSON object');

  const device = async (options: DeviceCommandOptions) => openDevice(await loadDeviceConfig(options.config ?? []));

  deviceOptions(
    program
      .command('install')
      .description('verify a bundle and stage its target; the device runs it after a reboot and `run`')
      .requiredOption(
        '--src-dir <path>',
        'the bundle: a directory with tuf/, ostree_repo/ and apps/, or a .tar or .zip of one',
      )
      .option('--target <name>', 'install this target from the bundle instead of the highest version')
      .option(
        '--force',
        'install even a lower version (downgrade); on the target the device runs, sync its apps again',
      ),
  )
    .addOption(progressFdOption())
    .action(
      async (
        options: DeviceCommandOptions & { srcDir: string; target?: string; force?: boolean; progressFd?: number },
      ) => {
        const target = await device(options);
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
        setReport(
          bundleVerified ? await reportToMedia(context, target, 'install', report, media) : report,
          options.json ?? false,
        );
      },
    );

  deviceOptions(
    program
      .command('run')
      .description(
        'after the reboot (or engine restart): start the apps, watch them through the testing window, commit or roll back',
      ),
  )
    .option(
      '--no-wait',
      'start the apps and exit at once (105, state TESTING); a later run finishes the testing window',
    )
    .addOption(progressFdOption())
    .action(async (options: DeviceCommandOptions & { wait: boolean; progressFd?: number }) => {
      const target = await device(options);
      const progress = progressFor(context.io, options);
      const report = await withDeviceLock(target.paths.volatileDir, 'run', () =>
        runPending(target, { noWait: !options.wait, progress: progress.listener }),
      )
        .catch(errorReport)
        .finally(() => progress.stop());
      // A run with no update pending (every boot calls it, and it may restart the current apps) leaves no report
      // behind, and no warning either: the stick belongs to an update.
      const media = NO_UPDATE_PENDING.has(report.outcome) ? null : await lastMediaOf(target);
      setReport(
        media === null ? report : await reportToMedia(context, target, 'run', report, media),
        options.json ?? false,
      );
    });

  if (name === 'aklite-offline') return;

  deviceOptions(
    program.command('status').description('show the booted and pending targets, the update state and the last error'),
  ).action(async (options: DeviceCommandOptions) => {
    setReport(await deviceStatus(await device(options)), options.json ?? false);
  });
}
