import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { canonicalize } from '@tufjs/canonical-json';
import { Signature } from '@tufjs/models';

/** A public key as it appears in root.json `keys`. */
export interface TufPublicKey {
  keytype: 'ed25519';
  scheme: 'ed25519';
  keyval: { public: string };
}

export interface SigningKey {
  readonly keyId: string;
  readonly publicKey: TufPublicKey;
  /** Signs bytes, returning the signature as TUF carries it (hex). */
  signHex(data: Uint8Array): string;
  /** A signer in the shape `Metadata.sign` wants. */
  signer(): (data: Buffer) => Signature;
}

// The fixed DER prefix of an ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows it.
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/**
 * The key id as securesystemslib computes it: sha256 over the canonical JSON of {keytype, scheme, keyval}.
 * python-tuf and tuf-js both look keys up by this id, so it must match byte for byte.
 */
export function keyIdOf(key: TufPublicKey): string {
  const canonical = canonicalize({ keytype: key.keytype, scheme: key.scheme, keyval: { public: key.keyval.public } });
  return createHash('sha256').update(canonical).digest('hex');
}

/** The TUF form of an ed25519 public key (private keys give their public half). */
export function tufPublicKeyOf(key: KeyObject): TufPublicKey {
  const der = (key.type === 'public' ? key : createPublicKey(key)).export({ format: 'der', type: 'spki' });
  if (
    der.length !== ED25519_SPKI_PREFIX.length + 32 ||
    !der.subarray(0, ED25519_SPKI_PREFIX.length).equals(ED25519_SPKI_PREFIX)
  ) {
    throw new Error('not an ed25519 key');
  }
  return {
    keytype: 'ed25519',
    scheme: 'ed25519',
    keyval: { public: der.subarray(ED25519_SPKI_PREFIX.length).toString('hex') },
  };
}

/**
 * A signing key whose private half may live anywhere (a file, a PKCS#11 token, behind a command): `signRaw` returns
 * the 64-byte ed25519 signature of the bytes. Every format ferry writes (spec TUF, Foundries) signs through it, so a
 * key signs the same bytes whatever holds it.
 */
export function signingKeyWith(publicKey: KeyObject, signRaw: (data: Uint8Array) => Buffer): SigningKey {
  const tufKey = tufPublicKeyOf(publicKey);
  const keyId = keyIdOf(tufKey);
  const signHex = (data: Uint8Array): string => signRaw(data).toString('hex');
  return {
    keyId,
    publicKey: tufKey,
    signHex,
    signer: () => (data: Buffer) => new Signature({ keyID: keyId, sig: signHex(data) }),
  };
}

function signingKeyFrom(privateKey: KeyObject): SigningKey {
  return signingKeyWith(createPublicKey(privateKey), (data) => sign(null, data, privateKey));
}

export function generateSigningKey(): { key: SigningKey; privatePem: string } {
  const { privateKey } = generateKeyPairSync('ed25519');
  const privatePem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  return { key: signingKeyFrom(privateKey), privatePem };
}

export function signingKeyFromPem(pem: string): SigningKey {
  return signingKeyFrom(createPrivateKey(pem));
}
