import { constants, verify } from 'node:crypto';
import { FerryError } from '../../errors.js';
import { fioCanonicalJson } from './fio-canonical.js';
import type { FioKeyType, FioPublicKey } from './fio-keys.js';

/** A role of a Foundries root: which keys may sign it, and how many of them must. */
export interface FioRole {
  readonly keyIds: readonly string[];
  readonly threshold: number;
}

/** The methods aktualizr accepts (MetaWithKeys::UnpackSignedObject, compared in lower case), and the key each fits. */
const METHOD_KEY_TYPE: Readonly<Record<string, FioKeyType>> = {
  ed25519: 'ed25519',
  'rsassa-pss': 'rsa',
  'rsassa-pss-sha256': 'rsa',
};

/**
 * The signature's bytes, when `sig` is them in standard padded base64 and in no other spelling. Node's decoder skips
 * what is not base64 and ignores the spare bits of the last character, so several strings decode to one signature;
 * only the one the signers write (Go's and aktualizr's StdEncoding) counts.
 */
function signatureBytes(sig: string): Buffer | undefined {
  const bytes = Buffer.from(sig, 'base64');
  return bytes.toString('base64') === sig ? bytes : undefined;
}

function signatureVerifies(key: FioPublicKey, message: Buffer, sig: Buffer): boolean {
  try {
    if (key.type === 'ed25519') return verify(null, message, key.key, sig);
    // RSASSA-PSS with SHA-256 and MGF1-SHA-256; the salt length is read from the signature, as aktualizr does (-2).
    return verify(
      'sha256',
      message,
      { key: key.key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO },
      sig,
    );
  } catch {
    return false;
  }
}

/** What a role's signatures are checked against: the role, the root's keys, and the signed body. */
export interface FioSignedInput {
  readonly file: string;
  readonly roleName: string;
  readonly role: FioRole;
  readonly keys: ReadonlyMap<string, FioPublicKey>;
  readonly signed: unknown;
  readonly signatures: unknown;
}

/**
 * How many distinct keys of `role` signed the canonical form of `signed`. A key that signs twice counts once, even
 * under a second id (the same key written in the other case); a signature by a key the role does not list counts
 * for nothing. A signature whose `method` is not one aktualizr knows, or does not fit the type of the key it names
 * (an "ed25519" signature by an RSA key), is refused outright: a signer that lies about its method is no signer.
 */
export function countFioSignatures(input: FioSignedInput): number {
  const { file, role, keys } = input;
  if (!Array.isArray(input.signatures)) {
    throw new FerryError('METADATA_MALFORMED', `tuf/${file}: "signatures" is not a list`);
  }
  const message = Buffer.from(fioCanonicalJson(input.signed), 'utf8');
  // The keys whose signatures verified, by key material: one key counts once, under however many ids or entries.
  const valid = new Set<string>();
  for (const entry of input.signatures as unknown[]) {
    const { keyid, method, sig } = (entry ?? {}) as { keyid?: unknown; method?: unknown; sig?: unknown };
    if (typeof keyid !== 'string' || typeof method !== 'string' || typeof sig !== 'string') {
      throw new FerryError('METADATA_MALFORMED', `tuf/${file}: a signature needs keyid, method and sig strings`);
    }
    const fits = METHOD_KEY_TYPE[method.toLowerCase()];
    if (fits === undefined) {
      throw new FerryError('SECURITY_ERROR', `tuf/${file}: signature method "${method}" is not supported`);
    }
    const key = keys.get(keyid);
    if (key === undefined) continue;
    if (key.type !== fits) {
      throw new FerryError(
        'SECURITY_ERROR',
        `tuf/${file}: the signature of key ${keyid} claims method "${method}", but it is an ${key.type.toUpperCase()} key`,
      );
    }
    if (!role.keyIds.includes(keyid) || valid.has(key.material)) continue;
    const bytes = signatureBytes(sig);
    if (bytes !== undefined && signatureVerifies(key, message, bytes)) valid.add(key.material);
  }
  return valid.size;
}

/** Refuses `file` unless the distinct keys of its role that signed it (countFioSignatures) reach the threshold. */
export function checkFioSignatures(input: FioSignedInput): number {
  const valid = countFioSignatures(input);
  if (valid < input.role.threshold) {
    throw new FerryError(
      'SECURITY_ERROR',
      `tuf/${input.file}: ${valid} valid signature(s) from ${input.roleName} keys, threshold is ${input.role.threshold}`,
    );
  }
  return valid;
}
