import type { SigningKey } from '../tuf/keys.js';
import { serializeMetadata, signRole, type RoleName } from '../tuf/sign-metadata.js';
import { fioRootKeyOf, serializeFioMetadata, signFioDocument } from '../tuf/foundries/fio-sign.js';

/**
 * The TUF format a factory signs in, chosen once by `repo init --format` and kept in ferry-repo.json: every later
 * command (target add, keys rotate, export, bundle sign) signs that way. `ferry` is spec TUF, read by tuf-js;
 * `fioctl` is the format `fioctl targets offline-update` writes and aktualizr-lite reads (see src/tuf/foundries/).
 * The private keys are the same ed25519 keys in both; only their public form, ids and signatures differ.
 */
export type MetadataFormat = 'ferry' | 'fioctl';
export const METADATA_FORMATS: readonly MetadataFormat[] = ['ferry', 'fioctl'];

/** `_type` of a top-level role: TUF spells it in lower case, aktualizr capitalises it. */
export function roleTypeIn(format: MetadataFormat, role: RoleName): string {
  return format === 'fioctl' ? role.charAt(0).toUpperCase() + role.slice(1) : role;
}

export function signRoleIn(
  format: MetadataFormat,
  role: RoleName,
  signed: Record<string, unknown>,
  keys: readonly SigningKey[],
): Record<string, unknown> {
  return format === 'fioctl' ? signFioDocument(signed, keys) : signRole(role, signed, keys);
}

/** The bytes of a metadata file: ferry's indented JSON, or aktualizr's canonical form (its hashes are of it). */
export function serializeIn(format: MetadataFormat, document: unknown): string {
  return format === 'fioctl' ? serializeFioMetadata(document) : serializeMetadata(document);
}

/** A key as root.json names it: its id and its public entry. */
export function rootKeyIn(format: MetadataFormat, key: SigningKey): { keyId: string; json: unknown } {
  if (format === 'fioctl') return fioRootKeyOf(key);
  return { keyId: key.keyId, json: key.publicKey };
}
