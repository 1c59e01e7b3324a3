import path from 'node:path';
import { Option, type Command } from 'commander';
import { withFactoryRepo } from '../../repo/factory-lock.js';
import { addOfflineTargetsKeys, rotateRoleKey } from '../../repo/rotate-keys.js';
import { ROLE_NAMES, type RoleName } from '../../tuf/sign-metadata.js';
import { readSignerSpec } from '../../tuf/signers/signer-spec.js';
import type { CommandContext } from '../command-context.js';
import { collect, positiveInteger } from '../shared-options.js';

/** keys rotate, keys add-offline: each writes the next N.root.json of the factory repository. */
export function registerKeysCommand(program: Command, { setReport }: CommandContext): void {
  const keys = program.command('keys').description('the TUF keys of the factory repository');
  const expiry = () =>
    new Option(
      '--root-expires-in-days <n>',
      'days until the new root.json expires (default: as the current one)',
    ).argParser(positiveInteger('--root-expires-in-days'));

  keys
    .command('rotate')
    .description(
      "replace a role's online key: writes the next N.root.json, signed by the current root keys (and the new ones for root)",
    )
    .requiredOption('--repo <dir>', 'the factory repository')
    .addOption(
      new Option('--role <role>', 'the role whose key is replaced').choices([...ROLE_NAMES]).makeOptionMandatory(),
    )
    .option(
      '--signer <file>',
      "a signer.json: the new key is made in (or taken by label from) a PKCS#11 token, or is a signing command's (README: Keys in an HSM); default a PEM file in keys/<role>/",
    )
    .addOption(expiry())
    .option('--json', 'print the result as one JSON object')
    .action(
      async (options: {
        repo: string;
        role: RoleName;
        signer?: string;
        rootExpiresInDays?: number;
        json?: boolean;
      }) => {
        const signer = options.signer === undefined ? undefined : await readSignerSpec(path.resolve(options.signer));
        const result = await withFactoryRepo(options.repo, 'keys rotate', (repo) =>
          rotateRoleKey(repo, options.role, {
            expiresInDays: options.rootExpiresInDays,
            ...(signer === undefined ? {} : { signer }),
          }),
        );
        setReport(
          {
            outcome: 'OK',
            message: `rotated the ${options.role} key: new key ${result.keyIds[0]}; wrote ${result.rootVersion}.root.json (refresh sticks with \`ferry export --tuf-only\`)`,
            data: { ...result, role: options.role },
          },
          options.json ?? false,
        );
      },
    );

  keys
    .command('add-offline')
    .description(
      'make offline targets keys (private halves written to --out, to keep off this machine); prod bundles then need --threshold of their signatures',
    )
    .requiredOption('--repo <dir>', 'the factory repository')
    .option('--out <dir>', 'where the private keys are written (created; 0700)')
    .option(
      '--signer <file>',
      "signer.json files instead of --out: each key is made in (or taken by label from) a PKCS#11 token, or is a signing command's (README: Keys in an HSM); repeat for each key",
      collect,
    )
    .addOption(new Option('--count <n>', 'how many keys (with --out)').default(1).argParser(positiveInteger('--count')))
    .addOption(
      new Option('--threshold <n>', 'how many of them must sign a prod bundle (default: all)').argParser(
        positiveInteger('--threshold'),
      ),
    )
    .addOption(expiry())
    .option('--json', 'print the result as one JSON object')
    .action(
      async (options: {
        repo: string;
        out?: string;
        signer?: string[];
        count: number;
        threshold?: number;
        rootExpiresInDays?: number;
        json?: boolean;
      }) => {
        const signers =
          options.signer === undefined
            ? undefined
            : await Promise.all(options.signer.map((file) => readSignerSpec(path.resolve(file))));
        const count = signers?.length ?? options.count;
        const result = await withFactoryRepo(options.repo, 'keys add-offline', (repo) =>
          addOfflineTargetsKeys(repo, {
            count,
            threshold: options.threshold ?? count,
            outDir: options.out === undefined ? undefined : path.resolve(options.out),
            signers,
            expiresInDays: options.rootExpiresInDays,
          }),
        );
        setReport(
          {
            outcome: 'OK',
            message: `added ${result.keyIds.length} offline targets key(s), ${result.files.length > 0 ? `written to ${result.files.join(', ')}` : 'held by their signers'}; wrote ${result.rootVersion}.root.json`,
            data: { ...result },
          },
          options.json ?? false,
        );
      },
    );
}
