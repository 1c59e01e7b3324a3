import path from 'node:path';
import { Option, type Command } from 'commander';
import { initFactoryRepo } from '../../repo/factory-repo.js';
import { METADATA_FORMATS, type MetadataFormat } from '../../repo/metadata-format.js';
import type { CommandContext } from '../command-context.js';
import { positiveInteger } from '../shared-options.js';

/** repo init: a new factory repository on the workstation. */
export function registerRepoCommand(program: Command, { setReport }: CommandContext): void {
  const repo = program.command('repo').description('the factory repository on the workstation');
  repo
    .command('init <dir>')
    .description('create the four TUF roles (ed25519), 1.root.json, an archive OSTree repo and apps/')
    .addOption(
      new Option('--root-expires-in-days <n>', 'how long root.json stays valid')
        .default(365)
        .argParser(positiveInteger('--root-expires-in-days')),
    )
    .option('--factory <name>', 'the factory name in app uris (apps.ferry.local/<factory>/<app>)', 'factory')
    .addOption(
      new Option(
        '--format <format>',
        "the TUF format every later command signs in: ferry (spec TUF) or fioctl (fioctl's and aktualizr-lite's: ED25519 keys under aktualizr's key ids, base64 signatures with a method, capitalised _type, timestamp with the snapshot's hashes), whose exports stock aklite-offline takes, apps in compose-publish's manifest form (see README: Foundries compatibility)",
      )
        .choices(METADATA_FORMATS)
        .default('ferry'),
    )
    .action(async (dir: string, options: { rootExpiresInDays: number; factory: string; format: MetadataFormat }) => {
      await initFactoryRepo(path.resolve(dir), {
        rootExpiresInDays: options.rootExpiresInDays,
        factory: options.factory,
        metadataFormat: options.format,
      });
      setReport(
        { outcome: 'OK', message: `created factory repository ${path.resolve(dir)} (${options.format} format)` },
        false,
      );
    });
}
