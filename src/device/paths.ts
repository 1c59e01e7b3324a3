import path from 'node:path';
import type { DeviceConfig } from './config.js';

/** Where ferry keeps its files on the device, all derived from the configuration. */
export interface DevicePaths {
  readonly trustedMetadataDir: string;
  /**
   * `<storage>/ferry/tuf-foundries`: the trusted state of the Foundries (fioctl) format, kept apart from the ferry
   * format's: root.json (the newest trusted root) and versions.json (the role versions last accepted).
   */
  readonly foundriesTrustDir: string;
  readonly appStore: string;
  readonly statusFile: string;
  /** `<storage>/update-state`: the state name alone, for scripts. */
  readonly updateStateFile: string;
  /** `<storage>/inconsistent`: present, holding the reason, only while the device is inconsistent. */
  readonly inconsistentFile: string;
  readonly rebootSentinel: string;
  readonly volatileDir: string;
  /** `<storage>/ferry/journal`: intent and result of each device-changing step. */
  readonly journalFile: string;
  /** In the volatile directory: an id for this boot, made at its first use and gone after a reboot. */
  readonly bootIdFile: string;
  /** `<storage>/ferry/device-key.pem`: the device's ed25519 private key (0600), made once at provisioning. */
  readonly deviceKeyFile: string;
  /** `<storage>/ferry/device-key.pub`: its public key, the one the workstation registers. */
  readonly devicePublicKeyFile: string;
  /** `<storage>/ferry/device-id`: the name the device signs its reports under. */
  readonly deviceIdFile: string;
  /** `<storage>/ferry/device.csr`: the PKCS#10 request for a certificate of the device key, for the factory line. */
  readonly deviceRequestFile: string;
  /** `<storage>/ferry/device.crt`: the certificate the factory CA issued for the device key; every report carries it. */
  readonly deviceCertificateFile: string;
  /**
   * `<storage>/ferry/decryption-key.pem`: the device's EC P-256 key (PKCS#8, 0600), made once at provisioning: an
   * encrypted bundle's content key is wrapped for it.
   */
  readonly decryptionKeyFile: string;
  /** `<storage>/ferry/decryption.csr`: the PKCS#10 request for a certificate of the decryption key (CN = device id). */
  readonly decryptionRequestFile: string;
  /** `<storage>/ferry/fleet-keys`: the fleet keys the device was given, `<name>.pem` each (P-256, 0600). */
  readonly fleetKeysDir: string;
  /** `<storage>/ferry/time-floor`: the newest verified signing time; expiry is never checked against less. */
  readonly timeFloorFile: string;
}

export function devicePaths(config: DeviceConfig): DevicePaths {
  const ferryDir = path.join(config.storagePath, 'ferry');
  return {
    trustedMetadataDir: path.join(ferryDir, 'tuf'),
    foundriesTrustDir: path.join(ferryDir, 'tuf-foundries'),
    appStore: path.join(ferryDir, 'apps'),
    statusFile: path.join(ferryDir, 'status.json'),
    updateStateFile: path.join(config.storagePath, 'update-state'),
    inconsistentFile: path.join(config.storagePath, 'inconsistent'),
    rebootSentinel: path.join(config.rebootSentinelDir, config.rebootSentinelName),
    volatileDir: config.rebootSentinelDir,
    journalFile: path.join(ferryDir, 'journal'),
    bootIdFile: path.join(config.rebootSentinelDir, 'ferry-boot-id'),
    deviceKeyFile: path.join(ferryDir, 'device-key.pem'),
    devicePublicKeyFile: path.join(ferryDir, 'device-key.pub'),
    deviceIdFile: path.join(ferryDir, 'device-id'),
    deviceRequestFile: path.join(ferryDir, 'device.csr'),
    deviceCertificateFile: path.join(ferryDir, 'device.crt'),
    decryptionKeyFile: path.join(ferryDir, 'decryption-key.pem'),
    decryptionRequestFile: path.join(ferryDir, 'decryption.csr'),
    fleetKeysDir: path.join(ferryDir, 'fleet-keys'),
    timeFloorFile: path.join(ferryDir, 'time-floor'),
  };
}
