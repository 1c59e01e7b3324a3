import path from 'node:path';
import { Option, type Command } from 'commander';
import { exportBundle } from '../../bundle/export.js';
import { openFactoryRepo } from '../../repo/factory-repo.js';
import { exitCodeTable, positiveInteger, type CommandContext } from '../command-context.js';

/** export: a bundle for the stick. */
export function registerExportCommand(program: Command, { setReport }: CommandContext): void {
  program
    .command('export <target> <dst>')
    .description('write a bundle for <target> into <dst>: tuf/ (re-signed, expiring in N days) and ostree_repo/')
    .requiredOption('--repo <dir>', 'the factory repository')
    .requiredOption('--tag <tag>', 'the tag the bundle is for; the target must carry it')
    .option('--prod', 'a production bundle (only production devices take it)')
    .addOption(
      new Option('--archive <kind>', 'write one file at <dst>: a tar or a zip of the bundle').choices(['tar', 'zip']),
    )
    .addOption(
      new Option('--expires-in-days <n>', 'days until the bundle metadata expires')
        .default(30)
        .argParser(positiveInteger('--expires-in-days')),
    )
    .addHelpText('after', exitCodeTable(['export']))
    .action(
      async (
        targetName: string,
        dst: string,
        options: { repo: string; tag: string; prod?: boolean; expiresInDays: number; archive?: 'tar' | 'zip' },
      ) => {
        const result = await exportBundle(await openFactoryRepo(path.resolve(options.repo)), {
          targetName,
          destination: path.resolve(dst),
          tag: options.tag,
          type: options.prod ? 'prod' : 'ci',
          expiresInDays: options.expiresInDays,
          archive: options.archive,
        });
        setReport(
          {
            outcome: 'OK',
            message: `exported ${result.target} to ${result.destination} (expires ${result.expires}); verified`,
            data: { ...result },
          },
          false,
        );
      },
    );
}
