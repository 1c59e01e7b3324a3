import { X509Certificate } from 'node:crypto';
import { FerryError, describeCause } from '../errors.js';
import { readSmallFile } from '../util/atomic-file.js';
import { caPathsOf, loadDeviceCaTrust } from './device-ca.js';
import { certificateCommonName, isP256Key, keyUsagesOf, validityOf } from './ed25519-x509.js';

/**
 * The certificates an encrypted bundle is addressed to (`export --encrypt-to`): a device's decryption certificate
 * (`device certify` of its decryption.csr) or a fleet key's (`ca fleet-key`). The workstation takes one only as the
 * factory's device CA vouches for it, now: a certificate of another CA, out of its validity or revoked would hand the
 * bundle's content key to whoever holds a key the factory never certified or no longer trusts.
 */

/** A certificate file is small; a device's two certificates together are about 1.5 KiB. */
const CERTIFICATE_FILE_MAX_BYTES = 256 * 1024;

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----\r?\n[\s\S]*?-----END CERTIFICATE-----/g;

/** Every certificate a file holds: each PEM block, or the file as one DER certificate. Throws on anything else. */
function certificatesIn(bytes: Buffer): X509Certificate[] {
  const text = bytes.toString('latin1');
  if (!text.includes('-----BEGIN')) return [new X509Certificate(bytes)];
  const blocks = text.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new Error('it holds no PEM CERTIFICATE block');
  return blocks.map((block) => new X509Certificate(block));
}

const nameOf = (certificate: X509Certificate): string =>
  certificateCommonName(certificate) ?? certificate.subject.replace(/\n/g, ', ');

/**
 * Reads each file (PEM, one certificate or several; or one DER certificate) and returns the recipient certificates
 * in it: every one whose key is EC P-256, so that a file holding a device's two certificates (its ed25519 device
 * certificate and its decryption certificate) names the device. Refuses, with one line naming the file: a repository
 * without a device CA (DEVICE_CA_UNAVAILABLE); a file that cannot be read or holds no certificate, no P-256 key, or a
 * P-256 certificate the CA did not issue (its signature checked, not the names), not valid at `now`, revoked, a CA's,
 * or whose keyUsage lacks keyAgreement (DEVICE_CERTIFICATE_INVALID). A certificate given twice counts once.
 */
export async function checkRecipientCertificates(
  repoDir: string,
  files: readonly string[],
  now: Date,
): Promise<X509Certificate[]> {
  if (files.length === 0) return [];
  const trust = await loadDeviceCaTrust(repoDir);
  if (trust === null)
    throw new FerryError(
      'DEVICE_CA_UNAVAILABLE',
      `${repoDir} has no device CA (${caPathsOf(repoDir).certificateFile}) to check ${files[0]} by: ferry ca init makes one`,
    );
  const refuse = (file: string, reason: string, cause?: unknown): FerryError =>
    new FerryError('DEVICE_CERTIFICATE_INVALID', `${file}: ${reason}`, cause === undefined ? {} : { cause });
  const recipients = new Map<string, X509Certificate>();
  for (const file of files) {
    let bytes: Buffer;
    try {
      bytes = await readSmallFile(file, CERTIFICATE_FILE_MAX_BYTES);
    } catch (error) {
      throw refuse(file, `cannot be read: ${describeCause(error)}`, error);
    }
    let certificates: X509Certificate[];
    try {
      certificates = certificatesIn(bytes);
    } catch (error) {
      throw refuse(file, `not an X.509 certificate: ${describeCause(error)}`, error);
    }
    const p256 = certificates.filter((certificate) => isP256Key(certificate.publicKey));
    if (p256.length === 0)
      throw refuse(
        file,
        `no certificate in it holds an EC P-256 key (${certificates.map((certificate) => `"${nameOf(certificate)}": ${certificate.publicKey.asymmetricKeyType ?? 'unknown'}`).join(', ')}): give a device's decryption certificate (ferry device certify of its decryption.csr) or a fleet key's (ferry ca fleet-key)`,
      );
    for (const certificate of p256) {
      const name = nameOf(certificate);
      if (!certificate.checkIssued(trust.certificate) || !certificate.verify(trust.certificate.publicKey))
        throw refuse(file, `the certificate of "${name}" is not issued by the device CA of ${repoDir}`);
      if (certificate.ca) throw refuse(file, `the certificate of "${name}" is a CA certificate, not a recipient's`);
      const { notBefore, notAfter } = validityOf(certificate);
      if (now < notBefore || now > notAfter)
        throw refuse(
          file,
          `the certificate of "${name}" is not valid at ${now.toISOString()} (${notBefore.toISOString()} to ${notAfter.toISOString()})`,
        );
      if (trust.revokedSerials.has(certificate.serialNumber))
        throw refuse(file, `the certificate of "${name}" (serial ${certificate.serialNumber}) is revoked`);
      let usages: string[] | undefined;
      try {
        usages = await keyUsagesOf(certificate);
      } catch (error) {
        throw refuse(file, `the key usage of "${name}" cannot be read: ${describeCause(error)}`, error);
      }
      if (usages !== undefined && !usages.includes('keyAgreement'))
        throw refuse(
          file,
          `the certificate of "${name}" does not allow key agreement (its key usage: ${usages.join(', ') || 'none'})`,
        );
      recipients.set(certificate.fingerprint256, certificate);
    }
  }
  return [...recipients.values()];
}
