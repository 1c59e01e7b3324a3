import { createPrivateKey, X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { certificateCommonName, createCertificateRequest } from '../ca/ed25519-x509.js';
import { FerryError, describeCause } from '../errors.js';
import { readTextIfPresent, writeFileAtomic } from '../util/atomic-file.js';
import type { DeviceKey } from './device-key.js';
import type { DevicePaths } from './paths.js';

/**
 * The device's certificate: `device provision` writes a request for the device key (subject CN = the device id)
 * beside the key, the factory line's station signs it (`ferry device certify`), and the device keeps what it issued
 * in `device.crt`. Every report the device writes then carries it, so that the workstation trusts the report by the
 * factory CA rather than by a key registered one device at a time.
 */

const CERTIFICATE_MAX_BYTES = 64 * 1024;

/**
 * Writes the request for the device key, unless the same one is there. ed25519 signatures are deterministic, so the
 * request of a key and id is always the same bytes: writing it again changes nothing.
 */
export async function writeDeviceRequest(paths: DevicePaths, key: DeviceKey): Promise<string> {
  const privateKey = createPrivateKey(await fs.readFile(paths.deviceKeyFile));
  const request = await createCertificateRequest(key.id, privateKey);
  if ((await readTextIfPresent(paths.deviceRequestFile)) !== request)
    await writeFileAtomic(paths.deviceRequestFile, request);
  return request;
}

/**
 * Checks that a certificate is for this device (its key, its id as the subject) before the device keeps it. Which
 * CA issued it is the workstation's to judge: the device holds no CA and trusts nothing by it.
 */
export function checkDeviceCertificate(bytes: Uint8Array, key: DeviceKey, file: string): X509Certificate {
  let certificate: X509Certificate;
  try {
    if (bytes.length > CERTIFICATE_MAX_BYTES) throw new Error(`larger than ${CERTIFICATE_MAX_BYTES} bytes`);
    certificate = new X509Certificate(bytes);
  } catch (error) {
    throw new FerryError('DEVICE_CERTIFICATE_INVALID', `${file} is not an X.509 certificate: ${describeCause(error)}`, {
      cause: error,
    });
  }
  const certified = certificate.publicKey.export({ format: 'der', type: 'spki' });
  if (!certified.equals(key.publicKey.key.export({ format: 'der', type: 'spki' })))
    throw new FerryError('DEVICE_CERTIFICATE_INVALID', `${file} certifies another key, not this device's key`);
  const name = certificateCommonName(certificate);
  if (name !== key.id)
    throw new FerryError(
      'DEVICE_CERTIFICATE_INVALID',
      `${file} is issued to "${name ?? certificate.subject}", not to this device ("${key.id}")`,
    );
  return certificate;
}

/** Keeps a checked certificate as the device's (a renewed one replaces the old). */
export async function saveDeviceCertificate(paths: DevicePaths, certificate: X509Certificate): Promise<void> {
  await writeFileAtomic(paths.deviceCertificateFile, certificate.toString());
}

/** The device's certificate as PEM, or null when it has none. */
export async function loadDeviceCertificate(paths: DevicePaths): Promise<string | null> {
  return (await readTextIfPresent(paths.deviceCertificateFile)) ?? null;
}
