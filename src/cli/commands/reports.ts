import path from 'node:path';
import type { Command } from 'commander';
import { loadDeviceConfig } from '../../device/config.js';
import { provisionDeviceKey } from '../../device/device-key.js';
import type { Device } from '../../device/device.js';
import { devicePaths } from '../../device/paths.js';
import { OUTCOMES } from '../../exit-codes.js';
import type { CommandReport } from '../../lifecycle/report.js';
import { loadRegisteredKeys, readKeyFile, registerDeviceKey } from '../../reports/device-registry.js';
import { readReports, reportTable } from '../../reports/read-reports.js';
import type { ReportStep } from '../../reports/report.js';
import { writeStepReport } from '../../reports/write-report.js';
import { collect, type CommandContext } from '../command-context.js';

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

/** device provision and device register: device keys; reports: reading back what devices left on a stick. */
export function registerReportCommands(program: Command, { io, setReport }: CommandContext): void {
  const device = program
    .command('device')
    .description("the device's own key (on the device) and the registry of device keys (on the workstation)");

  device
    .command('provision')
    .description('create the device key (once: an existing key is never replaced); print the device id and public key')
    .option(
      '-c, --config <file|dir>',
      'configuration file or directory (repeatable; default: the sota.toml locations aktualizr-lite reads)',
      collect,
    )
    .option('--id <id>', 'the device id (default: the first 16 hex digits of the sha256 of the public key)')
    .option('--json', 'print the result as one JSON object')
    .action(async (options: { config?: string[]; id?: string; json?: boolean }) => {
      const paths = devicePaths(await loadDeviceConfig(options.config ?? []));
      const { key, created } = await provisionDeviceKey(paths, { id: options.id });
      setReport(
        {
          outcome: 'OK',
          message: `${created ? 'provisioned' : 'already provisioned'}: device id ${key.id}\n${key.publicKey.pem.trimEnd()}`,
          data: {
            id: key.id,
            publicKey: key.publicKey.pem,
            keyId: key.publicKey.keyId,
            keyFile: paths.deviceKeyFile,
            publicKeyFile: paths.devicePublicKeyFile,
            created,
          },
        },
        options.json ?? false,
      );
    });

  device
    .command('register')
    .description('register a device public key in the factory repository (<repo>/devices/<id>.pub)')
    .requiredOption('--repo <dir>', 'the factory repository')
    .requiredOption('--id <id>', 'the device id (ferry device provision prints it)')
    .requiredOption('--key <pem-file>', "the device's public key, PEM (device-key.pub)")
    .option('--json', 'print the result as one JSON object')
    .action(async (options: { repo: string; id: string; key: string; json?: boolean }) => {
      const registration = await registerDeviceKey(
        path.resolve(options.repo),
        options.id,
        await readKeyFile(path.resolve(options.key)),
      );
      setReport(
        {
          outcome: 'OK',
          message: registration.created
            ? `registered device ${registration.id} in ${registration.file}`
            : `device ${registration.id} is already registered with this key (${registration.file})`,
          data: { ...registration },
        },
        options.json ?? false,
      );
    });

  program
    .command('reports <media>')
    .description(
      'verify and list the signed reports devices left on a stick (<media>/reports/<device>/*.json) against the registered device keys',
    )
    .requiredOption('--repo <dir>', 'the factory repository whose devices/ holds the registered keys')
    .option('--json', 'print the result as one JSON object')
    .action(async (media: string, options: { repo: string; json?: boolean }) => {
      const rows = await readReports(path.resolve(media), await loadRegisteredKeys(path.resolve(options.repo)));
      const rejected = rows.filter((row) => !row.valid);
      // The table is the command's answer whatever the outcome, so it goes to stdout even when some rows are
      // rejected; the outcome line follows it (on stderr for a rejection, as every failure).
      if (!options.json && rows.length > 0) io.stdout(`${reportTable(rows)}\n`);
      const summary = `${rows.length} report${rows.length === 1 ? '' : 's'} on ${path.resolve(media)}`;
      setReport(
        rejected.length === 0
          ? {
              outcome: 'OK',
              message: rows.length === 0 ? `no reports on ${path.resolve(media)}` : `${summary}, all valid`,
              data: { rows },
            }
          : {
              outcome: 'REPORTS_REJECTED',
              message: `${summary}: ${rejected.length} rejected, first ${rejected[0]!.file}: ${rejected[0]!.reason}`,
              data: { rows },
            },
        options.json ?? false,
      );
    });
}
