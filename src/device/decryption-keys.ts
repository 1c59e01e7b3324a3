import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { createCertificateRequest, isP256Key, parseCertificateRequest } from '../ca/ed25519-x509.js';
import { FerryError, describeCause } from '../errors.js';
import { readSmallFile, readTextIfPresent, writeFileAtomic } from '../util/atomic-file.js';
import { isDeviceId } from './device-key.js';
import type { DevicePaths } from './paths.js';

/**
 * The keys a device opens encrypted bundles with: its own EC P-256 decryption key, made once at provisioning, whose
 * request (decryption.csr, CN = the device id, signed by the key) the factory's station certifies; and the fleet keys
 * it was given (`device provision --fleet-key`), one key shared by many devices. An encrypted bundle's content key is
 * wrapped for the certificates it was exported to, and the device tries every key it holds.
 */

/** A PEM private key is a few hundred bytes. */
const KEY_FILE_MAX_BYTES = 64 * 1024;
const PEM_SUFFIX = '.pem';

/** The name the device's own decryption key goes by among the keys it holds. */
export const DEVICE_DECRYPTION_KEY_NAME = 'device';

export interface DecryptionKey {
  /** `device` for the device's own key, the fleet key's name otherwise. */
  readonly name: string;
  readonly key: KeyObject;
}

export interface SkippedDecryptionKey {
  readonly name: string;
  readonly file: string;
  readonly reason: string;
}

/** The keys, in the order to try them, and beside them the files that are no usable key, for a warning. */
export type DecryptionKeys = DecryptionKey[] & { readonly skipped: readonly SkippedDecryptionKey[] };

/** A P-256 private key from PEM bytes, or the reason it is not one. */
function p256PrivateKeyOf(pem: Buffer | string): KeyObject {
  const key = createPrivateKey(pem);
  if (!isP256Key(key)) {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    throw new Error(
      `an ${key.asymmetricKeyType ?? 'unknown'}${curve === undefined ? '' : ` (${curve})`} key, not an EC P-256 key`,
    );
  }
  return key;
}

/**
 * The device's own key first (`device`), then the fleet keys by name; none when the device holds none. A file that
 * is not a P-256 private key (unreadable, damaged, of another type) is skipped and listed in `skipped`, never thrown:
 * one bad fleet key must not keep the device from opening a bundle with its own key or another fleet key.
 */
export async function loadDecryptionKeys(paths: DevicePaths): Promise<DecryptionKeys> {
  const keys: DecryptionKey[] = [];
  const skipped: SkippedDecryptionKey[] = [];
  const take = async (name: string, file: string): Promise<void> => {
    let bytes: Buffer;
    try {
      bytes = await readSmallFile(file, KEY_FILE_MAX_BYTES);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      skipped.push({ name, file, reason: `cannot be read: ${describeCause(error)}` });
      return;
    }
    try {
      keys.push({ name, key: p256PrivateKeyOf(bytes) });
    } catch (error) {
      skipped.push({ name, file, reason: `not a P-256 private key: ${describeCause(error)}` });
    }
  };
  await take(DEVICE_DECRYPTION_KEY_NAME, paths.decryptionKeyFile);
  let entries: string[];
  try {
    entries = await fs.readdir(paths.fleetKeysDir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' && (error as NodeJS.ErrnoException).code !== 'ENOTDIR')
      skipped.push({ name: 'fleet keys', file: paths.fleetKeysDir, reason: `cannot be read: ${describeCause(error)}` });
    entries = [];
  }
  const names = entries
    .filter((entry) => entry.endsWith(PEM_SUFFIX))
    .map((entry) => entry.slice(0, -PEM_SUFFIX.length))
    // Provisioning writes only plain names; anything else in the directory is no fleet key of ferry's.
    .filter((name) => isDeviceId(name))
    .sort();
  for (const name of names) await take(name, path.join(paths.fleetKeysDir, `${name}${PEM_SUFFIX}`));
  return Object.assign(keys, { skipped });
}

export interface DecryptionKeyPlan {
  readonly key: KeyObject;
  /** PKCS#8 PEM, as written. */
  readonly pem: string;
  /** True when provisioning makes it now; false when the device had one. */
  readonly created: boolean;
}

/**
 * The device's decryption key as provisioning will leave it: the one there (never replaced: certificates were
 * issued for it, and bundles encrypted to them), or a new one. Reads only, so that every refusal of provisioning
 * comes before anything is written; a key file there that is not a P-256 key is refused (DEVICE_KEY_INVALID).
 */
export async function planDecryptionKey(paths: DevicePaths): Promise<DecryptionKeyPlan> {
  const existing = await readTextIfPresent(paths.decryptionKeyFile);
  if (existing !== undefined) {
    try {
      return { key: p256PrivateKeyOf(existing), pem: existing, created: false };
    } catch (error) {
      throw new FerryError(
        'DEVICE_KEY_INVALID',
        `${paths.decryptionKeyFile} is not a P-256 private key: ${describeCause(error)}`,
        { cause: error },
      );
    }
  }
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { key: privateKey, pem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), created: true };
}

/**
 * Writes a new decryption key, and its request unless the one there already asks for this key under this id. ECDSA
 * signatures differ each time, so a request is written again only when it must be: provisioning twice changes
 * nothing.
 */
export async function writeDecryptionKey(
  paths: DevicePaths,
  plan: DecryptionKeyPlan,
  deviceId: string,
): Promise<string> {
  if (plan.created) {
    await fs.mkdir(path.dirname(paths.decryptionKeyFile), { recursive: true });
    await writeFileAtomic(paths.decryptionKeyFile, plan.pem, 0o600);
  }
  const existing = await readTextIfPresent(paths.decryptionRequestFile);
  if (existing !== undefined && (await requestsFor(existing, plan.key, deviceId))) return existing;
  const request = await createCertificateRequest(deviceId, plan.key);
  await writeFileAtomic(paths.decryptionRequestFile, request);
  return request;
}

async function requestsFor(request: string, key: KeyObject, deviceId: string): Promise<boolean> {
  try {
    const parsed = await parseCertificateRequest(Buffer.from(request));
    const spki = createPublicKey(key).export({ format: 'der', type: 'spki' });
    return parsed.commonName === deviceId && parsed.publicKey.export({ format: 'der', type: 'spki' }).equals(spki);
  } catch {
    return false;
  }
}

export interface FleetKeyPlan {
  readonly name: string;
  /** The file given. */
  readonly source: string;
  /** `<storage>/ferry/fleet-keys/<name>.pem`. */
  readonly file: string;
  readonly pem: string;
  /** True when the device holds this very key under this name already. */
  readonly held: boolean;
}

/**
 * Reads and checks the fleet key files given to provisioning, before anything is written: each must be a P-256
 * private key (DEVICE_KEY_INVALID otherwise) whose file name, without `.pem`, is a plain name (USAGE otherwise),
 * given once. A name the device already holds with another key is refused too: bundles encrypted to the old key
 * would no longer open; give the new key another name.
 */
export async function planFleetKeys(paths: DevicePaths, files: readonly string[]): Promise<FleetKeyPlan[]> {
  const plans: FleetKeyPlan[] = [];
  for (const source of files) {
    const name = path.basename(source, PEM_SUFFIX);
    if (!isDeviceId(name))
      throw new FerryError(
        'USAGE',
        `--fleet-key ${source}: the key is kept under its file name without .pem, and "${name}" is not a plain name (1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit)`,
      );
    if (plans.some((plan) => plan.name === name))
      throw new FerryError('USAGE', `--fleet-key ${source}: a fleet key named "${name}" is given twice`);
    let key: KeyObject;
    try {
      key = p256PrivateKeyOf(await readSmallFile(source, KEY_FILE_MAX_BYTES));
    } catch (error) {
      throw new FerryError(
        'DEVICE_KEY_INVALID',
        `--fleet-key ${source} is not a P-256 private key: ${describeCause(error)}`,
        { cause: error },
      );
    }
    const pem = key.export({ format: 'pem', type: 'pkcs8' }).toString();
    const file = path.join(paths.fleetKeysDir, `${name}${PEM_SUFFIX}`);
    let heldKey: KeyObject | undefined;
    const held = await readTextIfPresent(file).catch(() => undefined);
    try {
      heldKey = held === undefined ? undefined : createPrivateKey(held);
    } catch {
      // A damaged key under this name opens nothing: the one given replaces it.
      heldKey = undefined;
    }
    const der = (of: KeyObject) => of.export({ format: 'der', type: 'pkcs8' });
    if (heldKey !== undefined && !der(heldKey).equals(der(key)))
      throw new FerryError(
        'DEVICE_KEY_INVALID',
        `the device holds another fleet key named "${name}" (${file}); it is never replaced, since bundles encrypted to it would no longer open: give the new key another file name`,
      );
    plans.push({ name, source, file, pem, held: heldKey !== undefined });
  }
  return plans;
}

/** Keeps the planned fleet keys (0600), those the device does not hold yet. */
export async function saveFleetKeys(paths: DevicePaths, plans: readonly FleetKeyPlan[]): Promise<void> {
  const toWrite = plans.filter((plan) => !plan.held);
  if (toWrite.length === 0) return;
  await fs.mkdir(paths.fleetKeysDir, { recursive: true, mode: 0o700 });
  for (const plan of toWrite) await writeFileAtomic(plan.file, plan.pem, 0o600);
}

/** Makes the decryption key and its request if the device has none (as `device provision` does), for `sim create`. */
export async function provisionDecryptionKey(paths: DevicePaths, deviceId: string): Promise<void> {
  await writeDecryptionKey(paths, await planDecryptionKey(paths), deviceId);
}
