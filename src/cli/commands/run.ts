import type { Command } from 'commander';
import { withDeviceLock } from '../../device/lock.js';
import { errorReport } from '../../command-report.js';
import { runPending } from '../../lifecycle/run.js';
import { lastMediaOf } from '../../reports/write-report.js';
import { progressFor, type CommandContext } from '../command-context.js';
import { reportToMedia } from '../report-to-media.js';
import { configuredDevice, deviceOptions, progressFdOption, type DeviceCommandOptions } from '../shared-options.js';

/** How a `run` with no update pending ends. */
const NO_UPDATE_PENDING: ReadonlySet<string> = new Set(['NOTHING_PENDING', 'APPS_RESTORED', 'APPS_RESTORE_FAILED']);

/** run (also under aklite-offline): after the reboot, start the apps, test them, commit or roll back. */
export function registerRunCommand(program: Command, context: CommandContext): void {
  deviceOptions(
    program
      .command('run')
      .description(
        'after the reboot (or engine restart): start the apps, watch them through the testing window until each reaches its status goal (running or healthy), run the health checks ([ferry] health_checks_dir), commit or roll back',
      ),
  )
    .option(
      '--no-wait',
      'start the apps and exit at once (105, state TESTING); a later run finishes the testing window',
    )
    .addOption(progressFdOption())
    .action(async (options: DeviceCommandOptions & { wait: boolean; progressFd?: number; logLevel?: number }) => {
      const target = await configuredDevice(options, context);
      const progress = progressFor(context.io, options);
      const report = await withDeviceLock(target.paths.volatileDir, 'run', () =>
        runPending(target, { noWait: !options.wait, progress: progress.listener }),
      )
        .catch(errorReport)
        .finally(() => progress.stop());
      // A run with no update pending (every boot calls it, and it may restart the current apps) leaves no report
      // behind, and no warning either: the stick belongs to an update.
      const media = NO_UPDATE_PENDING.has(report.outcome) ? null : await lastMediaOf(target);
      context.setReport(
        media === null ? report : await reportToMedia(context, target, 'run', report, media),
        options.json ?? false,
      );
    });
}
