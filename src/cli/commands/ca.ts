import path from 'node:path';
import { Option, type Command } from 'commander';
import { DEFAULT_CA_DAYS, initDeviceCa } from '../../ca/device-ca.js';
import type { CommandContext } from '../command-context.js';
import { positiveInteger } from '../shared-options.js';

/** ca init: the factory's device CA, which the certificates of devices (and so their reports) chain to. */
export function registerCaCommand(program: Command, { setReport }: CommandContext): void {
  const ca = program.command('ca').description("the factory's device CA on the workstation (<repo>/ca/)");
  ca.command('init')
    .description(
      'create the device CA of a factory repository: an ed25519 key (<repo>/ca/ca-key.pem, 0600) and its self-signed certificate (<repo>/ca/ca.crt); an existing CA is kept',
    )
    .requiredOption('--repo <dir>', 'the factory repository')
    .addOption(
      new Option('--days <n>', 'how long the CA certificate stays valid')
        .default(DEFAULT_CA_DAYS)
        .argParser(positiveInteger('--days')),
    )
    .option('--json', 'print the result as one JSON object')
    .action(async (options: { repo: string; days: number; json?: boolean }) => {
      const result = await initDeviceCa(path.resolve(options.repo), options.days);
      setReport(
        {
          outcome: 'OK',
          message: `${result.created ? 'created' : 'kept the existing'} device CA ${result.subject} (valid until ${result.notAfter}): ${result.certificateFile}`,
          data: { ...result },
        },
        options.json ?? false,
      );
    });
}
