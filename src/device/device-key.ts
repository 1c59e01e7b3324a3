import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { FerryError, describeCause } from '../errors.js';
import { generateSigningKey, keyIdOf, signingKeyFromPem, type SigningKey } from '../tuf/keys.js';
import { readTextIfPresent, writeFileAtomic } from '../util/atomic-file.js';
import type { DevicePaths } from './paths.js';

/**
 * The device's own ed25519 key: made once at provisioning, it signs the reports the device leaves on the stick, so
 * that the workstation can tell a device's report from anything else found on a stick that went through many hands.
 * Keys are handled with node:crypto, as the factory repository's TUF keys are: it reads and writes the PEM forms
 * (PKCS#8, SPKI) that both ends exchange.
 */

/** A device id becomes a directory on the stick and a file name in the factory repository: plain characters only. */
const DEVICE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function isDeviceId(text: string): boolean {
  return DEVICE_ID.test(text) && !text.includes('..');
}

export function checkDeviceId(text: string, what = '--id'): string {
  if (!isDeviceId(text)) {
    throw new FerryError(
      'USAGE',
      `${what} "${text}" must be 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit`,
    );
  }
  return text;
}

// The fixed DER prefix of an ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows it.
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** An ed25519 public key in the forms the registry, the reports and the device id need. */
export interface DevicePublicKey {
  readonly key: KeyObject;
  /** SPKI PEM, as stored in `<repo>/devices/<id>.pub` and `device-key.pub`. */
  readonly pem: string;
  /** The raw 32 bytes. */
  readonly raw: Buffer;
  /** The key id as TUF computes it, so that a report's signature names its key the way metadata does. */
  readonly keyId: string;
}

/** Parses a PEM public key (a private key gives its public half); anything but ed25519 is refused. */
export function parseDevicePublicKey(pem: string | Buffer): DevicePublicKey {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (error) {
    throw new FerryError('DEVICE_KEY_INVALID', `not a PEM public key: ${describeCause(error)}`, { cause: error });
  }
  if (key.asymmetricKeyType !== 'ed25519')
    throw new FerryError('DEVICE_KEY_INVALID', `an ${key.asymmetricKeyType ?? 'unknown'} key, not an ed25519 key`);
  const der = key.export({ format: 'der', type: 'spki' });
  const raw = Buffer.from(der.subarray(ED25519_SPKI_PREFIX.length));
  return {
    key,
    pem: key.export({ format: 'pem', type: 'spki' }).toString(),
    raw,
    keyId: keyIdOf({ keytype: 'ed25519', scheme: 'ed25519', keyval: { public: raw.toString('hex') } }),
  };
}

/** The id a device gets unless it is given one: short, stable, and tied to its key. */
export function defaultDeviceId(publicKey: DevicePublicKey): string {
  return createHash('sha256').update(publicKey.raw).digest('hex').slice(0, 16);
}

export interface DeviceIdentity {
  readonly id: string;
  readonly publicKey: DevicePublicKey;
}

export interface DeviceKey extends DeviceIdentity {
  readonly signingKey: SigningKey;
}

function keyFromPrivatePem(pem: string, file: string): { signingKey: SigningKey; publicKey: DevicePublicKey } {
  try {
    const privateKey = createPrivateKey(pem);
    if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error(`an ${privateKey.asymmetricKeyType} key`);
    return { signingKey: signingKeyFromPem(pem), publicKey: parseDevicePublicKey(pem) };
  } catch (error) {
    throw new FerryError('DEVICE_KEY_INVALID', `${file} is not an ed25519 private key: ${describeCause(error)}`, {
      cause: error,
    });
  }
}

/** The device's key and id, or null when the device was never provisioned. Reads only. */
export async function loadDeviceKey(paths: DevicePaths): Promise<DeviceKey | null> {
  const pem = await readTextIfPresent(paths.deviceKeyFile);
  if (pem === undefined) return null;
  const { signingKey, publicKey } = keyFromPrivatePem(pem, paths.deviceKeyFile);
  const storedId = (await readTextIfPresent(paths.deviceIdFile))?.trim();
  const id = storedId === undefined || storedId === '' ? defaultDeviceId(publicKey) : storedId;
  if (!isDeviceId(id)) throw new FerryError('DEVICE_KEY_INVALID', `${paths.deviceIdFile} holds no valid device id`);
  return { id, publicKey, signingKey };
}

/**
 * Makes the device key if there is none, and never replaces one: a device keeps its identity for life, because the
 * workstation trusts reports by the key it registered. The public key and the id are written beside the private
 * key, and written again if they went missing (both follow from the private key and the id given at first).
 */
export async function provisionDeviceKey(
  paths: DevicePaths,
  options: { readonly id?: string | undefined } = {},
): Promise<{ key: DeviceKey; created: boolean }> {
  if (options.id !== undefined) checkDeviceId(options.id);
  const existing = await loadDeviceKey(paths);
  if (existing !== null) {
    if (options.id !== undefined && options.id !== existing.id) {
      throw new FerryError(
        'DEVICE_ID_CONFLICT',
        `the device is already provisioned as "${existing.id}"; its key and id never change (asked for "${options.id}")`,
        { detail: { id: existing.id, publicKey: existing.publicKey.pem } },
      );
    }
    await writeIdentityFiles(paths, existing);
    return { key: existing, created: false };
  }
  const { privatePem } = generateSigningKey();
  const { signingKey, publicKey } = keyFromPrivatePem(privatePem, paths.deviceKeyFile);
  // An id file without a key: a provisioning cut off after it wrote the id, or an id set by the factory line.
  const storedId = (await readTextIfPresent(paths.deviceIdFile))?.trim();
  const id = options.id ?? (storedId !== undefined && isDeviceId(storedId) ? storedId : defaultDeviceId(publicKey));
  const key: DeviceKey = { id, publicKey, signingKey };
  try {
    await fs.mkdir(path.dirname(paths.deviceKeyFile), { recursive: true });
    // The id first: a key whose id file is lost would come back under the default id, not the one asked for.
    await writeFileAtomic(paths.deviceIdFile, `${key.id}\n`);
    await writeFileAtomic(paths.deviceKeyFile, privatePem, 0o600);
    await writeIdentityFiles(paths, key);
  } catch (error) {
    throw new FerryError(
      'INTERNAL_ERROR',
      `cannot write the device key to ${paths.deviceKeyFile}: ${describeCause(error)}`,
      {
        cause: error,
      },
    );
  }
  return { key, created: true };
}

async function writeIdentityFiles(paths: DevicePaths, key: DeviceKey): Promise<void> {
  if ((await readTextIfPresent(paths.devicePublicKeyFile)) !== key.publicKey.pem)
    await writeFileAtomic(paths.devicePublicKeyFile, key.publicKey.pem);
  if ((await readTextIfPresent(paths.deviceIdFile))?.trim() !== key.id)
    await writeFileAtomic(paths.deviceIdFile, `${key.id}\n`);
}
