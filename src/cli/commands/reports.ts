import path from 'node:path';
import type { Command } from 'commander';
import { loadDeviceCaTrust } from '../../ca/device-ca.js';
import { loadRegisteredKeys } from '../../reports/device-registry.js';
import { readReports, reportTable } from '../../reports/read-reports.js';
import type { CommandContext } from '../command-context.js';

/** reports: reading back, on the workstation, the signed reports devices left on a stick. */
export function registerReportsCommand(program: Command, { io, setReport }: CommandContext): void {
  program
    .command('reports <media>')
    .description(
      "verify and list the signed reports devices left on a stick (<media>/reports/<device>/*.json): a report carrying a device certificate by the factory's device CA (not revoked, valid now and at the report's time), any other by the registered device key",
    )
    .requiredOption(
      '--repo <dir>',
      'the factory repository whose ca/ holds the device CA and its revocation list, and devices/ the registered keys',
    )
    .option('--json', 'print the result as one JSON object')
    .action(async (media: string, options: { repo: string; json?: boolean }) => {
      const repo = path.resolve(options.repo);
      const ca = await loadDeviceCaTrust(repo);
      const rows = await readReports(
        path.resolve(media),
        await loadRegisteredKeys(repo),
        ca === null ? null : { ca, now: new Date() },
      );
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
