import path from 'node:path';
import type { Command } from 'commander';
import { loadRegisteredKeys } from '../../reports/device-registry.js';
import { readReports, reportTable } from '../../reports/read-reports.js';
import type { CommandContext } from '../command-context.js';

/** reports: reading back, on the workstation, the signed reports devices left on a stick. */
export function registerReportsCommand(program: Command, { io, setReport }: CommandContext): void {
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
