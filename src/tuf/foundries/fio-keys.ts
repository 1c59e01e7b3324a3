import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { FerryError } from '../../errors.js';

/**
 * The keys of the Foundries (aktualizr/Uptane) format: `{"keytype": "ED25519" | "RSA", "keyval": {"public": …}}`, an
 * ED25519 key as 64 hex digits (fioctl and aktualizr write upper case), an RSA key as a PEM SubjectPublicKeyInfo. No
 * `scheme`: the key type decides how a signature is checked, and the key id is aktualizr's own rule
 * (PublicKey::KeyId): sha256, in lower-case hex, of the JSON string of the public value without trailing newlines.
 */
export type FioKeyType = 'ed25519' | 'rsa';

export interface FioPublicKey {
  readonly keyId: string;
  readonly type: FioKeyType;
  readonly key: KeyObject;
  /**
   * The key itself (its DER SubjectPublicKeyInfo in hex). A key id is computed from the public value as written, so
   * one ed25519 key written in upper and in lower case has two ids: a threshold counts keys, not ids.
   */
  readonly material: string;
}

/** The public value as written in root.json; the key id is computed from it, byte for byte. */
export interface FioKeyJson {
  keytype: 'ED25519' | 'RSA';
  keyval: { public: string };
}

// The fixed DER prefix of an ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows it.
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
/** aktualizr takes RSA keys of these sizes only (Crypto::IdentifyRSAKeyType); any other does not verify there. */
const RSA_BITS = [2048, 3072, 4096];

export function fioKeyIdOf(publicValue: string): string {
  // JSON.stringify escapes as jsoncpp does for the ASCII a key holds (a PEM's newlines become \n).
  return createHash('sha256')
    .update(JSON.stringify(publicValue.replace(/\n+$/, '')))
    .digest('hex');
}

/**
 * Reads one entry of root.json `keys`. The id it is filed under must be the id of its key: a root that files a key
 * under another id could make one key count as two toward a threshold, or look like a key it is not.
 */
export function parseFioKey(keyId: string, json: unknown, file: string): FioPublicKey {
  const { keytype, keyval } = (json ?? {}) as { keytype?: unknown; keyval?: { public?: unknown } };
  const value = typeof keyval === 'object' && keyval !== null ? keyval.public : undefined;
  if (typeof keytype !== 'string' || typeof value !== 'string') {
    throw new FerryError('METADATA_MALFORMED', `tuf/${file}: key ${keyId} needs a keytype and keyval.public`);
  }
  if (fioKeyIdOf(value) !== keyId) {
    throw new FerryError(
      'SECURITY_ERROR',
      `tuf/${file}: key id ${keyId} does not match its key (the key's id is ${fioKeyIdOf(value)})`,
    );
  }
  const type = keytype.toLowerCase();
  if (type === 'ed25519') {
    if (!/^[0-9a-fA-F]{64}$/.test(value)) {
      throw new FerryError('METADATA_MALFORMED', `tuf/${file}: ED25519 key ${keyId} is not 64 hex digits`);
    }
    const der = Buffer.concat([ED25519_SPKI_PREFIX, Buffer.from(value, 'hex')]);
    return {
      keyId,
      type: 'ed25519',
      key: createPublicKey({ key: der, format: 'der', type: 'spki' }),
      material: der.toString('hex'),
    };
  }
  if (type === 'rsa') {
    let key: KeyObject;
    try {
      key = createPublicKey({ key: value, format: 'pem' });
    } catch {
      throw new FerryError('METADATA_MALFORMED', `tuf/${file}: RSA key ${keyId} is not a PEM public key`);
    }
    const bits = key.asymmetricKeyDetails?.modulusLength;
    if (key.asymmetricKeyType !== 'rsa' || bits === undefined || !RSA_BITS.includes(bits)) {
      throw new FerryError(
        'METADATA_MALFORMED',
        `tuf/${file}: RSA key ${keyId} is not a 2048, 3072 or 4096-bit RSA public key`,
      );
    }
    return { keyId, type: 'rsa', key, material: key.export({ format: 'der', type: 'spki' }).toString('hex') };
  }
  throw new FerryError('METADATA_MALFORMED', `tuf/${file}: key ${keyId} has the unsupported keytype ${keytype}`);
}
