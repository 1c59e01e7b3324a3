import { promises as fs } from 'node:fs';
import path from 'node:path';
import { checkDeviceId, isDeviceId, parseDevicePublicKey, type DevicePublicKey } from '../device/device-key.js';
import { FerryError, describeCause } from '../errors.js';
import { openFactoryRepo } from '../repo/factory-repo.js';
import { readSmallFile, writeFileAtomic } from '../util/atomic-file.js';

/**
 * The workstation's registry of device keys: `<repo>/devices/<id>.pub`, one SPKI PEM per device. It is what
 * `ferry reports` trusts a report by, so a registered key is never silently replaced.
 */

const KEY_MAX_BYTES = 16 * 1024;

export function devicesDirOf(repoDir: string): string {
  return path.join(repoDir, 'devices');
}

export interface Registration {
  readonly id: string;
  readonly file: string;
  readonly keyId: string;
  /** False when the same key was registered for this id before. */
  readonly created: boolean;
}

/** Registers `publicKey` for device `id` in the factory repository at `repoDir`. */
export async function registerDeviceKey(
  repoDir: string,
  id: string,
  publicKey: DevicePublicKey,
): Promise<Registration> {
  checkDeviceId(id);
  const repo = await openFactoryRepo(repoDir);
  const dir = devicesDirOf(repo.dir);
  const file = path.join(dir, `${id}.pub`);
  const registered = await readRegisteredKey(file);
  if (registered !== undefined) {
    if (!registered.raw.equals(publicKey.raw)) {
      throw new FerryError(
        'DEVICE_KEY_CONFLICT',
        `device "${id}" is already registered in ${file} with another key (${registered.keyId}, not ${publicKey.keyId})`,
        { detail: { id, file, registeredKeyId: registered.keyId, keyId: publicKey.keyId } },
      );
    }
    return { id, file, keyId: publicKey.keyId, created: false };
  }
  await fs.mkdir(dir, { recursive: true });
  await writeFileAtomic(file, publicKey.pem);
  return { id, file, keyId: publicKey.keyId, created: true };
}

/** Reads a key file given with `--key`: a PEM public key (or private key, whose public half is taken). */
export async function readKeyFile(file: string): Promise<DevicePublicKey> {
  let pem: Buffer;
  try {
    pem = await readSmallFile(file, KEY_MAX_BYTES);
  } catch (error) {
    throw new FerryError('DEVICE_KEY_INVALID', `cannot read the key ${file}: ${describeCause(error)}`, {
      cause: error,
    });
  }
  try {
    return parseDevicePublicKey(pem);
  } catch (error) {
    throw new FerryError('DEVICE_KEY_INVALID', `${file}: ${describeCause(error)}`, { cause: error });
  }
}

async function readRegisteredKey(file: string): Promise<DevicePublicKey | undefined> {
  let pem: Buffer;
  try {
    pem = await readSmallFile(file, KEY_MAX_BYTES);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new FerryError('REPO_INVALID', `cannot read the registered key ${file}: ${describeCause(error)}`, {
      cause: error,
    });
  }
  try {
    return parseDevicePublicKey(pem);
  } catch (error) {
    throw new FerryError('REPO_INVALID', `the registered key ${file} is broken: ${describeCause(error)}`, {
      cause: error,
    });
  }
}

/**
 * Every registered key of the repository, by device id. A broken key file counts as no key: its device's reports
 * are then rejected as from an unknown device, never trusted.
 */
export async function loadRegisteredKeys(repoDir: string): Promise<Map<string, DevicePublicKey>> {
  const repo = await openFactoryRepo(repoDir);
  const dir = devicesDirOf(repo.dir);
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw new FerryError('REPO_INVALID', `cannot read ${dir}: ${describeCause(error)}`, { cause: error });
  }
  const keys = new Map<string, DevicePublicKey>();
  for (const name of names.sort()) {
    const id = name.replace(/\.pub$/, '');
    if (id === name || !isDeviceId(id)) continue;
    const key = await readRegisteredKey(path.join(dir, name)).catch(() => undefined);
    if (key !== undefined) keys.set(id, key);
  }
  return keys;
}
