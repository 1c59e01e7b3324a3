import { createHash } from 'node:crypto';
import type { SigningKey } from '../keys.js';
import { fioCanonicalJson } from './fio-canonical.js';
import { fioKeyIdOf, type FioKeyJson } from './fio-keys.js';

/**
 * Writes the Foundries (fioctl / aktualizr Uptane) format with a factory's ed25519 keys: the same private keys sign
 * either format, only their public form, their ids and the signature envelope differ. A key is
 * `{"keytype": "ED25519", "keyval": {"public": <upper-case hex>}}` under aktualizr's generator's id (fioKeyIdOf), a
 * signature `{"keyid", "method": "ed25519", "sig": <base64>}` over the canonical form of `signed`.
 */

/** A factory key as the Foundries format names it in root.json. */
export interface FioRootKey {
  readonly keyId: string;
  readonly json: FioKeyJson;
}

export function fioRootKeyOf(key: SigningKey): FioRootKey {
  const publicHex = key.publicKey.keyval.public.toUpperCase();
  return { keyId: fioKeyIdOf(publicHex), json: { keytype: 'ED25519', keyval: { public: publicHex } } };
}

/** One signature of `signed` by `key`, as aktualizr reads it. */
export function fioSignatureOf(
  signed: Record<string, unknown>,
  key: SigningKey,
): { keyid: string; method: 'ed25519'; sig: string } {
  const message = Buffer.from(fioCanonicalJson(signed), 'utf8');
  return {
    keyid: fioRootKeyOf(key).keyId,
    method: 'ed25519',
    sig: Buffer.from(key.signHex(message), 'hex').toString('base64'),
  };
}

/** The document `{signatures, signed}` signed by every key. */
export function signFioDocument(signed: Record<string, unknown>, keys: readonly SigningKey[]): Record<string, unknown> {
  return { signatures: keys.map((key) => fioSignatureOf(signed, key)), signed };
}

/**
 * A metadata file as aktualizr's generator writes it: the canonical form of the whole document, no newline. The
 * hashes another role names are of the canonical form and the length of the file; written canonically, both are of
 * the same bytes.
 */
export function serializeFioMetadata(document: unknown): string {
  return fioCanonicalJson(document);
}

/** What timestamp.json says of snapshot.json (sha256 and sha512, as fioctl's server writes), or snapshot of targets. */
export function fioMetaEntryOf(
  bytes: string,
  version: number,
  algorithms: readonly ('sha256' | 'sha512')[],
): { hashes: Record<string, string>; length: number; version: number } {
  return {
    hashes: Object.fromEntries(
      algorithms.map((algorithm) => [algorithm, createHash(algorithm).update(bytes, 'utf8').digest('hex')]),
    ),
    length: Buffer.byteLength(bytes, 'utf8'),
    version,
  };
}
