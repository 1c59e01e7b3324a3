import path from 'node:path';
import { Option, type Command } from 'commander';
import { DEFAULT_CA_DAYS, DEFAULT_DEVICE_DAYS, initDeviceCa } from '../../ca/device-ca.js';
import { makeFleetKey } from '../../ca/fleet-key.js';
import type { CommandContext } from '../command-context.js';
import { positiveInteger } from '../shared-options.js';

/**
 * ca init: the factory's device CA, which the certificates of devices (and so their reports) chain to; ca fleet-key:
 * a key many devices share, certified by that CA, that encrypted bundles can be addressed to.
 */
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

  ca.command('fleet-key <name>')
    .description(
      'make a fleet key: an EC P-256 key for many devices (device provision --fleet-key) and its certificate (CN=fleet:<name>, keyUsage keyAgreement), signed by the device CA and recorded in <repo>/ca/issued/, for export --encrypt-to; writes <out>/<name>.pem (0600) and <out>/<name>.crt, never over existing files',
    )
    .requiredOption('--repo <dir>', 'the factory repository whose device CA signs (ferry ca init)')
    .requiredOption('--out <dir>', 'where to write the key and the certificate')
    .addOption(
      new Option('--days <n>', 'how long the certificate stays valid')
        .default(DEFAULT_DEVICE_DAYS)
        .argParser(positiveInteger('--days')),
    )
    .option('--ca-key <file>', 'the device CA key, where it is kept instead of <repo>/ca/ca-key.pem')
    .option('--json', 'print the result as one JSON object')
    .action(
      async (name: string, options: { repo: string; out: string; days: number; caKey?: string; json?: boolean }) => {
        const fleetKey = await makeFleetKey(path.resolve(options.repo), name, path.resolve(options.out), {
          days: options.days,
          caKeyFile: options.caKey === undefined ? undefined : path.resolve(options.caKey),
        });
        setReport(
          {
            outcome: 'OK',
            message: `made fleet key ${fleetKey.name}: ${fleetKey.keyFile} (give it to the fleet's devices: ferry device provision --fleet-key), certificate ${fleetKey.certificateFile} (serial ${fleetKey.serial}, valid until ${fleetKey.notAfter}; for export --encrypt-to)`,
            data: { ...fleetKey },
          },
          options.json ?? false,
        );
      },
    );
}
