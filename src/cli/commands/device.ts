import type { X509Certificate } from 'node:crypto';
import path from 'node:path';
import { Option, type Command } from 'commander';
import { loadDeviceConfig } from '../../device/config.js';
import { certifyDevice, DEFAULT_DEVICE_DAYS, revokeDevice } from '../../ca/device-ca.js';
import { planDecryptionKey, planFleetKeys, saveFleetKeys, writeDecryptionKey } from '../../device/decryption-keys.js';
import { checkDeviceCertificate, saveDeviceCertificate, writeDeviceRequest } from '../../device/device-certificate.js';
import { loadDeviceKey, provisionDeviceKey } from '../../device/device-key.js';
import { withDeviceLock } from '../../device/lock.js';
import { devicePaths, type DevicePaths } from '../../device/paths.js';
import { FOUNDRIES_ROOT_FILE, loadFoundriesTrust, saveFoundriesTrust } from '../../device/foundries-trust-file.js';
import { FerryError, describeCause } from '../../errors.js';
import { planFoundriesRootProvision, type FoundriesRootProvision } from '../../tuf/foundries/fio-provision.js';
import { METADATA_MAX_BYTES } from '../../tuf/verify-metadata.js';
import { readSmallFile, writeFileAtomic } from '../../util/atomic-file.js';
import { readKeyFile, registerDeviceKey } from '../../reports/device-registry.js';
import type { CommandContext } from '../command-context.js';
import { collect, configOption, positiveInteger } from '../shared-options.js';

const CERTIFICATE_FILE_MAX_BYTES = 64 * 1024;

/**
 * device provision (on the device), device register, certify and revoke (on the workstation): the device keys
 * reports are signed with, and how the workstation comes to trust them.
 */
export function registerDeviceCommand(program: Command, { setReport }: CommandContext): void {
  const device = program
    .command('device')
    .description(
      "the device's own key and certificate (on the device); the registry of device keys, the station that certifies devices and the revocation list (on the workstation)",
    );

  device
    .command('provision')
    .description(
      'create the device key and the decryption key (once each: an existing key is never replaced) and their certificate requests; print the device id and public key; with --fleet-key, keep fleet keys; with --trusted-root, record the Foundries root the device trusts',
    )
    .addOption(configOption())
    .option('--id <id>', 'the device id (default: the first 16 hex digits of the sha256 of the public key)')
    .option(
      '--trusted-root <files...>',
      'the Foundries (fioctl) root(s) the device trusts, as an LmP image carries them: taken as given the first time; once one is trusted, only a newer root that chains from it (give every version up to it)',
    )
    .option(
      '--certificate <file>',
      'the device certificate the factory CA issued for this device (ferry device certify): kept as <storage>/ferry/device.crt, and carried by every report; the device must be provisioned already',
    )
    .addOption(
      new Option(
        '--fleet-key <file>',
        'a fleet key (ferry ca fleet-key: an EC P-256 private key, PEM) the device opens encrypted bundles with, kept as <storage>/ferry/fleet-keys/<name>.pem (0600), <name> being the file name without .pem (repeatable)',
      ).argParser(collect),
    )
    .option('--json', 'print the result as one JSON object')
    .action(
      async (options: {
        config?: string[];
        id?: string;
        trustedRoot?: string[];
        certificate?: string;
        fleetKey?: string[];
        json?: boolean;
      }) => {
        const paths = devicePaths(await loadDeviceConfig(options.config ?? []));
        const provision = async () => {
          // Every refusal of the root, the certificate or a key comes before anything is written.
          const root =
            options.trustedRoot === undefined ? undefined : await planTrustedRoot(paths, options.trustedRoot);
          const certificate =
            options.certificate === undefined ? undefined : await planCertificate(paths, options.certificate);
          const fleetKeys = await planFleetKeys(
            paths,
            (options.fleetKey ?? []).map((file) => path.resolve(file)),
          );
          const decryptionKey = await planDecryptionKey(paths);
          const provisioned = await provisionDeviceKey(paths, { id: options.id });
          const request = await writeDeviceRequest(paths, provisioned.key);
          const decryptionRequest = await writeDecryptionKey(paths, decryptionKey, provisioned.key.id);
          await saveFleetKeys(paths, fleetKeys);
          if (certificate !== undefined) await saveDeviceCertificate(paths, certificate);
          if (root?.action === 'trust') await saveFoundriesTrust(paths.foundriesTrustDir, { root: root.root });
          return { ...provisioned, root, request, decryptionKey, decryptionRequest, fleetKeys, certificate };
        };
        // The trusted root is what an install verifies from, and promotes: never changed while one runs.
        const { key, created, root, request, decryptionKey, decryptionRequest, fleetKeys, certificate } =
          options.trustedRoot === undefined
            ? await provision()
            : await withDeviceLock(paths.volatileDir, 'device provision', provision);
        const rootLine =
          root === undefined
            ? ''
            : root.action === 'already-trusted'
              ? `\nFoundries root: version ${root.version} is already trusted`
              : `\nFoundries root: version ${root.version} is trusted${root.from === undefined ? '' : ` (was version ${root.from})`}`;
        const fleetLine =
          fleetKeys.length === 0
            ? ''
            : `\nfleet keys: ${fleetKeys.map((fleetKey) => `${fleetKey.name}${fleetKey.held ? ' (held already)' : ''}`).join(', ')} kept in ${paths.fleetKeysDir}`;
        setReport(
          {
            outcome: 'OK',
            message: `${created ? 'provisioned' : 'already provisioned'}: device id ${key.id}${rootLine}${certificate === undefined ? '' : `\ncertificate: serial ${certificate.serialNumber} kept in ${paths.deviceCertificateFile}`}\n${key.publicKey.pem.trimEnd()}\ncertificate requests (ferry device certify): ${paths.deviceRequestFile} (device key, for reports), ${paths.decryptionRequestFile} (decryption key, for encrypted bundles)${fleetLine}`,
            data: {
              id: key.id,
              publicKey: key.publicKey.pem,
              keyId: key.publicKey.keyId,
              keyFile: paths.deviceKeyFile,
              publicKeyFile: paths.devicePublicKeyFile,
              requestFile: paths.deviceRequestFile,
              request,
              decryptionKeyFile: paths.decryptionKeyFile,
              decryptionKeyCreated: decryptionKey.created,
              decryptionRequestFile: paths.decryptionRequestFile,
              decryptionRequest,
              fleetKeys: fleetKeys.map((fleetKey) => ({
                name: fleetKey.name,
                file: fleetKey.file,
                created: !fleetKey.held,
              })),
              ...(certificate === undefined
                ? {}
                : { certificateFile: paths.deviceCertificateFile, serial: certificate.serialNumber }),
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
      },
    );

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

  device
    .command('certify <csr-file>')
    .description(
      "the factory line's station: check a device's certificate request (device.csr or decryption.csr, which its own key signed) and issue its certificate, signed by the factory's device CA and recorded in <repo>/ca/issued/: for device.csr (ed25519) the device certificate its reports carry, for decryption.csr (EC P-256) a key-agreement certificate that export --encrypt-to takes; prints it (PEM), or writes it to --out",
    )
    .requiredOption('--repo <dir>', 'the factory repository whose device CA signs (ferry ca init)')
    .addOption(
      new Option('--days <n>', 'how long the certificate stays valid')
        .default(DEFAULT_DEVICE_DAYS)
        .argParser(positiveInteger('--days')),
    )
    .option('--ca-key <file>', 'the device CA key, where it is kept instead of <repo>/ca/ca-key.pem')
    .option('--out <file>', 'write the certificate to this file instead of printing it')
    .option('--json', 'print the result as one JSON object')
    .action(
      async (
        csrFile: string,
        options: { repo: string; days: number; caKey?: string; out?: string; json?: boolean },
      ) => {
        let request: Buffer;
        try {
          request = await readSmallFile(path.resolve(csrFile), CERTIFICATE_FILE_MAX_BYTES);
        } catch (error) {
          throw new FerryError('DEVICE_CERTIFICATE_INVALID', `cannot read ${csrFile}: ${describeCause(error)}`, {
            cause: error,
          });
        }
        const issued = await certifyDevice(path.resolve(options.repo), request, {
          days: options.days,
          caKeyFile: options.caKey === undefined ? undefined : path.resolve(options.caKey),
        });
        if (options.out !== undefined) await writeFileAtomic(path.resolve(options.out), issued.certificate);
        setReport(
          {
            outcome: 'OK',
            message:
              options.out === undefined
                ? issued.certificate.trimEnd()
                : `issued the ${issued.keyUsage === 'keyAgreement' ? 'decryption certificate' : 'certificate'} of device ${issued.device} (serial ${issued.serial}, valid until ${issued.notAfter}): ${path.resolve(options.out)}`,
            data: { ...issued, ...(options.out === undefined ? {} : { file: path.resolve(options.out) }) },
          },
          options.json ?? false,
        );
      },
    );

  device
    .command('revoke <id-or-serial>')
    .description(
      "add a device's certificates (every one issued for the device id: its device and decryption certificates; or the one with the serial; fleet:<name> for a fleet key's) to the revocation list of the factory repository (<repo>/ca/revoked.json): ferry reports rejects the reports they carry, and export --encrypt-to refuses them",
    )
    .requiredOption('--repo <dir>', 'the factory repository whose device CA issued them')
    .option('--json', 'print the result as one JSON object')
    .action(async (idOrSerial: string, options: { repo: string; json?: boolean }) => {
      const revocation = await revokeDevice(path.resolve(options.repo), idOrSerial);
      const serials = revocation.revoked.map((entry) => entry.serial);
      setReport(
        {
          outcome: 'OK',
          message:
            serials.length === 0
              ? `already revoked: ${revocation.already.join(', ')} (${revocation.file})`
              : `revoked ${serials.length === 1 ? 'certificate' : 'certificates'} ${serials.join(', ')} of ${[...new Set(revocation.revoked.map((entry) => entry.device))].join(', ')} (${revocation.file})`,
          data: { ...revocation },
        },
        options.json ?? false,
      );
    });
}

/** Reads the certificate given and checks it is for the key and id the device has: before anything is written. */
async function planCertificate(paths: DevicePaths, file: string): Promise<X509Certificate> {
  const key = await loadDeviceKey(paths);
  if (key === null)
    throw new FerryError(
      'DEVICE_CERTIFICATE_INVALID',
      `the device has no key for ${file} to certify: provision it first (ferry device provision), then certify its request`,
    );
  let bytes: Buffer;
  try {
    bytes = await readSmallFile(path.resolve(file), CERTIFICATE_FILE_MAX_BYTES);
  } catch (error) {
    throw new FerryError('DEVICE_CERTIFICATE_INVALID', `cannot read ${file}: ${describeCause(error)}`, {
      cause: error,
    });
  }
  return checkDeviceCertificate(bytes, key, file);
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
