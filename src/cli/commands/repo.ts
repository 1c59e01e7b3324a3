import path from 'node:path';
import { Option, type Command } from 'commander';
import { initFactoryRepo } from '../../repo/factory-repo.js';
import { METADATA_FORMATS, type MetadataFormat } from '../../repo/metadata-format.js';
import { FerryError } from '../../errors.js';
import { ROLE_NAMES, type RoleName } from '../../tuf/sign-metadata.js';
import { readSignerSpec, type SignerSpec } from '../../tuf/signers/signer-spec.js';
import type { CommandContext } from '../command-context.js';
import { collect, positiveInteger } from '../shared-options.js';

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
    .option(
      '--signer <role=file>',
      "a role's key held outside the repository: a signer.json naming a PKCS#11 token (the key is made there, or taken by label) or a signing command (README: Keys in an HSM); repeat for other roles; the other roles get PEM files in keys/<role>/",
      collect,
    )
    .action(
      async (
        dir: string,
        options: { rootExpiresInDays: number; factory: string; format: MetadataFormat; signer?: string[] },
      ) => {
        const signers: Partial<Record<RoleName, SignerSpec>> = {};
        for (const entry of options.signer ?? []) {
          const [role, file] = [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)];
          if (!(ROLE_NAMES as readonly string[]).includes(role) || file === '' || !entry.includes('='))
            throw new FerryError(
              'USAGE',
              `--signer "${entry}": give <role>=<signer.json>, role one of ${ROLE_NAMES.join(', ')}`,
            );
          signers[role as RoleName] = await readSignerSpec(path.resolve(file));
        }
        await initFactoryRepo(path.resolve(dir), {
          rootExpiresInDays: options.rootExpiresInDays,
          factory: options.factory,
          metadataFormat: options.format,
          signers,
        });
        setReport(
          { outcome: 'OK', message: `created factory repository ${path.resolve(dir)} (${options.format} format)` },
          false,
        );
      },
    );
}
