import { X509Certificate } from 'node:crypto';
import type { DeviceCaTrust } from '../ca/device-ca.js';
import { certificateCommonName, validityOf } from '../ca/ed25519-x509.js';
import { parseDevicePublicKey, type DevicePublicKey } from '../device/device-key.js';

/**
 * Whether a report's certificate makes its key the key of the device the report names. Pure: the CA, the revoked
 * serials and the time are given.
 *
 * The certificate must be issued by the factory's device CA (the signature checked, not only the names), be a device
 * certificate (not a CA's), name the device as its subject, and hold an ed25519 key. It must be within its validity
 * both now and at the report's time: now, because the key of an expired certificate may since have leaked, and a
 * report's time is whatever its signer wrote; at the report's time, because a report dated outside the validity is
 * one the certificate never covered. Its serial must not be on the revocation list.
 */
export type CertificateVerdict = { readonly key: DevicePublicKey } | { readonly reason: string };

export interface CertificateCheck {
  readonly ca: DeviceCaTrust;
  readonly now: Date;
}

export function keyFromCertificate(pem: string, device: string, at: Date, check: CertificateCheck): CertificateVerdict {
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(pem);
  } catch {
    return { reason: 'its certificate cannot be read' };
  }
  let issued = false;
  try {
    issued = certificate.checkIssued(check.ca.certificate) && certificate.verify(check.ca.certificate.publicKey);
  } catch {
    issued = false;
  }
  if (!issued) return { reason: "its certificate is not issued by the factory's device CA" };
  if (certificate.ca) return { reason: 'its certificate is a CA certificate, not a device certificate' };
  const name = certificateCommonName(certificate);
  if (name !== device)
    return { reason: `its certificate is issued to "${name ?? certificate.subject}", not "${device}"` };
  const ca = validityOf(check.ca.certificate);
  if (check.now < ca.notBefore || check.now > ca.notAfter)
    return {
      reason: `the factory's device CA certificate is not valid now: it is valid from ${ca.notBefore.toISOString()} to ${ca.notAfter.toISOString()}`,
    };
  const { notBefore, notAfter } = validityOf(certificate);
  const serial = certificate.serialNumber;
  const window = `${notBefore.toISOString()} to ${notAfter.toISOString()}`;
  if (check.now < notBefore || check.now > notAfter)
    return { reason: `its certificate (serial ${serial}) is not valid now: it is valid from ${window}` };
  if (at < notBefore || at > notAfter)
    return {
      reason: `its certificate (serial ${serial}) was not valid at the report's time: it is valid from ${window}`,
    };
  if (check.ca.revokedSerials.has(serial)) return { reason: `its certificate (serial ${serial}) is revoked` };
  try {
    return { key: parseDevicePublicKey(certificate.publicKey.export({ format: 'pem', type: 'spki' })) };
  } catch {
    return { reason: 'its certificate holds no ed25519 key' };
  }
}
