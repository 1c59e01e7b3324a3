import type { Device } from '../device/device.js';
import { OUTCOMES } from '../exit-codes.js';
import type { CommandReport } from '../command-report.js';
import type { ReportStep } from '../reports/signed-report.js';
import { writeStepReport } from '../reports/write-report.js';
import type { CommandContext } from './command-context.js';

/**
 * Leaves the signed report of an `install` or `run` on the stick, once the command has decided everything, and
 * says where in its --json data. The report never changes the outcome: when it cannot be written, a success or an
 * instruction says so in one warning line on stderr, while a failure keeps its one stderr line and carries the
 * warning in its --json data only.
 */
export async function reportToMedia(
  { name, io }: CommandContext,
  device: Device,
  step: ReportStep,
  report: CommandReport,
  media: string | null,
): Promise<CommandReport> {
  const written = await writeStepReport(device, step, report, media);
  if ('path' in written) return { ...report, data: { ...report.data, report: written.path } };
  if (OUTCOMES[report.outcome].kind !== 'failure') io.stderr(`${name}: warning: ${written.warning}\n`);
  return { ...report, data: { ...report.data, reportWarning: written.warning } };
}
