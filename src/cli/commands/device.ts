import path from 'node:path';
import type { Command } from 'commander';
import { loadDeviceConfig } from '../../device/config.js';
import { provisionDeviceKey } from '../../device/device-key.js';
import { devicePaths } from '../../device/paths.js';
import { readKeyFile, registerDeviceKey } from '../../reports/device-registry.js';
import type { CommandContext } from '../command-context.js';
import { configOption } from '../shared-options.js';

/** device provision (on the device) and device register (on the workstation): the device keys reports are signed with. */
export function registerDeviceCommand(program: Command, { setReport }: CommandContext): void {
  const device = program
    .command('device')
    .description("the device's own key (on the device) and the registry of device keys (on the workstation)");

  device
    .command('provision')
    .description('create the device key (once: an existing key is never replaced); print the device id and public key')
    .addOption(configOption())
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
}
