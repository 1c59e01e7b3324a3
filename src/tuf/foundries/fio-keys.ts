import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { FerryError } from '../../errors.js';
import { fioCanonicalJson } from './fio-canonical.js';

/**
 * The keys of the Foundries (aktualizr/Uptane) format: `{"keytype": "ED25519" | "RSA", "keyval": {"public": …}}`, an
 * ED25519 key as 64 hex digits (aktualizr writes upper case, fioctl lower case), an RSA key as a PEM
 * SubjectPublicKeyInfo. No `scheme`: the key type decides how a signature is checked.
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

const sha256Hex = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

/**
 * aktualizr's key id (PublicKey::KeyId), the one its uptane-generator writes: sha256, in lower-case hex, of the JSON
 * string of the public value without its trailing newlines. JSON.stringify escapes the ASCII a key holds as jsoncpp
 * does (a PEM's newlines become \n).
 */
export function fioKeyIdOf(publicValue: string): string {
  return sha256Hex(JSON.stringify(publicValue.replace(/\n+$/, '')));
}

/**
 * Every id the format's tools give a key. aktualizr never recomputes an id (it files a key under whatever id root.json
 * names), and the tools that write roots do not agree: aktualizr's generator uses fioKeyIdOf, fioctl
 * (client.AtsKey.KeyID) sha256 of the canonical JSON of the whole key `{"keytype", "keyval": {"public"}}`, and
 * ota-tuf's server sha256 of the key's DER SubjectPublicKeyInfo. An id that is none of these is not its key's.
 */
function idsOf(keytype: string, value: string, der: Buffer): string[] {
  return [fioKeyIdOf(value), sha256Hex(fioCanonicalJson({ keytype, keyval: { public: value } })), sha256Hex(der)];
}

function publicKeyOf(keyId: string, type: string, value: string, file: string): { type: FioKeyType; key: KeyObject } {
  if (type === 'ed25519') {
    if (!/^[0-9a-fA-F]{64}$/.test(value)) {
      throw new FerryError('METADATA_MALFORMED', `tuf/${file}: ED25519 key ${keyId} is not 64 hex digits`);
    }
    const der = Buffer.concat([ED25519_SPKI_PREFIX, Buffer.from(value, 'hex')]);
    return { type: 'ed25519', key: createPublicKey({ key: der, format: 'der', type: 'spki' }) };
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
    return { type: 'rsa', key };
  }
  throw new FerryError('METADATA_MALFORMED', `tuf/${file}: key ${keyId} has the unsupported keytype ${type}`);
}

/**
 * Reads one entry of root.json `keys`. The id it is filed under must be an id of its key (see idsOf): a root that
 * files a key under another key's id could make it look like a key it is not.
 */
export function parseFioKey(keyId: string, json: unknown, file: string): FioPublicKey {
  const { keytype, keyval } = (json ?? {}) as { keytype?: unknown; keyval?: { public?: unknown } };
  const value = typeof keyval === 'object' && keyval !== null ? keyval.public : undefined;
  if (typeof keytype !== 'string' || typeof value !== 'string') {
    throw new FerryError('METADATA_MALFORMED', `tuf/${file}: key ${keyId} needs a keytype and keyval.public`);
  }
  const { type, key } = publicKeyOf(keyId, keytype.toLowerCase(), value, file);
  const der = key.export({ format: 'der', type: 'spki' });
  if (!idsOf(keytype, value, der).includes(keyId)) {
    throw new FerryError(
      'SECURITY_ERROR',
      `tuf/${file}: key id ${keyId} does not match its key (by aktualizr's rule its id is ${fioKeyIdOf(value)})`,
    );
  }
  return { keyId, type, key, material: der.toString('hex') };
}
