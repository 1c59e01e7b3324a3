import path from 'node:path';
import type { Command } from 'commander';
import { loadDeviceConfig } from '../../device/config.js';
import { provisionDeviceKey } from '../../device/device-key.js';
import { withDeviceLock } from '../../device/lock.js';
import { devicePaths, type DevicePaths } from '../../device/paths.js';
import { FOUNDRIES_ROOT_FILE, loadFoundriesTrust, saveFoundriesTrust } from '../../device/foundries-trust-file.js';
import { FerryError, describeCause } from '../../errors.js';
import { planFoundriesRootProvision, type FoundriesRootProvision } from '../../tuf/foundries/fio-provision.js';
import { METADATA_MAX_BYTES } from '../../tuf/verify-metadata.js';
import { readSmallFile } from '../../util/atomic-file.js';
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
    .description(
      'create the device key (once: an existing key is never replaced); print the device id and public key; with --trusted-root, record the Foundries root the device trusts',
    )
    .addOption(configOption())
    .option('--id <id>', 'the device id (default: the first 16 hex digits of the sha256 of the public key)')
    .option(
      '--trusted-root <files...>',
      'the Foundries (fioctl) root(s) the device trusts, as an LmP image carries them: taken as given the first time; once one is trusted, only a newer root that chains from it (give every version up to it)',
    )
    .option('--json', 'print the result as one JSON object')
    .action(async (options: { config?: string[]; id?: string; trustedRoot?: string[]; json?: boolean }) => {
      const paths = devicePaths(await loadDeviceConfig(options.config ?? []));
      const provision = async () => {
        // Every refusal of the root comes before the key or the root is written.
        const root = options.trustedRoot === undefined ? undefined : await planTrustedRoot(paths, options.trustedRoot);
        const provisioned = await provisionDeviceKey(paths, { id: options.id });
        if (root?.action === 'trust') await saveFoundriesTrust(paths.foundriesTrustDir, { root: root.root });
        return { ...provisioned, root };
      };
      // The trusted root is what an install verifies from, and promotes: never changed while one runs.
      const { key, created, root } =
        options.trustedRoot === undefined
          ? await provision()
          : await withDeviceLock(paths.volatileDir, 'device provision', provision);
      const rootLine =
        root === undefined
          ? ''
          : root.action === 'already-trusted'
            ? `\nFoundries root: version ${root.version} is already trusted`
            : `\nFoundries root: version ${root.version} is trusted${root.from === undefined ? '' : ` (was version ${root.from})`}`;
      setReport(
        {
          outcome: 'OK',
          message: `${created ? 'provisioned' : 'already provisioned'}: device id ${key.id}${rootLine}\n${key.publicKey.pem.trimEnd()}`,
          data: {
            id: key.id,
            publicKey: key.publicKey.pem,
            keyId: key.publicKey.keyId,
            keyFile: paths.deviceKeyFile,
            publicKeyFile: paths.devicePublicKeyFile,
            created,
            ...(root === undefined
              ? {}
              : {
                  foundriesRoot: {
                    version: root.version,
                    changed: root.action === 'trust',
                    file: path.join(paths.foundriesTrustDir, FOUNDRIES_ROOT_FILE),
                  },
                }),
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

/** Reads the root files given and decides, from the root the device trusts, what provisioning records. */
async function planTrustedRoot(paths: DevicePaths, files: readonly string[]): Promise<FoundriesRootProvision> {
  const given: { name: string; bytes: Uint8Array }[] = [];
  for (const file of files) {
    try {
      given.push({ name: file, bytes: await readSmallFile(path.resolve(file), METADATA_MAX_BYTES) });
    } catch (error) {
      throw new FerryError('TRUSTED_ROOT_UNREADABLE', `cannot read ${file}: ${describeCause(error)}`, { cause: error });
    }
  }
  const trusted = await loadFoundriesTrust(paths.foundriesTrustDir);
  return planFoundriesRootProvision(trusted.state?.root, given);
}
