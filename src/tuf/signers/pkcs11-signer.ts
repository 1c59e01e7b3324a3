import { createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as Pkcs11Js from 'pkcs11js';
import { FerryError, describeCause } from '../../errors.js';
import { signingKeyWith, type SigningKey } from '../keys.js';
import { checkedSignature } from './checked-signature.js';

/**
 * An ed25519 key in a PKCS#11 token (an HSM, a smart card, SoftHSM2), used through the pkcs11js binding: the key is
 * made in the token and never leaves it; ferry reads its public half and asks the token for CKM_EDDSA signatures,
 * over the whole message in one C_Sign (EdDSA has no multi-part form in PKCS#11 tokens such as SoftHSM2). The
 * binding's calls are synchronous, as the TUF models' Metadata.sign wants a signer to be.
 */
export interface Pkcs11SignerSpec {
  readonly kind: 'pkcs11';
  /** The PKCS#11 module of the token's vendor, e.g. /usr/lib/softhsm/libsofthsm2.so. */
  readonly module: string;
  /** The token's label. */
  readonly token: string;
  /** The key's label in the token (CKA_LABEL of its private and public objects). */
  readonly label: string;
  /** Where the user PIN comes from: `env:NAME` (an environment variable) or `file:/path` (its first line). */
  readonly pinSource: string;
}

type Binding = typeof Pkcs11Js;
type Session = { readonly p11: Pkcs11Js.PKCS11; readonly session: Pkcs11Js.Handle; readonly binding: Binding };

// Mechanisms and attributes of PKCS#11 3.0 the binding names by number only.
const CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x1055;
const CKM_EDDSA = 0x1057;
const CKK_EC_EDWARDS = 0x40;
/** CKA_EC_PARAMS of an Ed25519 key: the curve named as a PrintableString, the form SoftHSM2 and OpenSC write. */
const EDWARDS25519_PARAMS = Buffer.from('130c656477617264733235353139', 'hex');
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** Loaded on first use: only a factory with a key in a token needs the native binding. */
let loadedBinding: Binding | undefined;
function binding(): Binding {
  if (loadedBinding === undefined) {
    try {
      loadedBinding = createRequire(import.meta.url)('pkcs11js') as Binding;
    } catch (error) {
      throw new FerryError(
        'SIGNER_FAILED',
        `the PKCS#11 binding (npm pkcs11js) cannot be loaded: ${describeCause(error)}`,
        {
          cause: error,
        },
      );
    }
  }
  return loadedBinding;
}

function readPin(spec: Pkcs11SignerSpec): string {
  const [kind, ...rest] = spec.pinSource.split(':');
  const where = rest.join(':');
  if (kind === 'env') {
    const pin = process.env[where];
    if (pin === undefined || pin === '')
      throw new FerryError('SIGNER_FAILED', `the PIN of token "${spec.token}" comes from $${where}, which is not set`);
    return pin;
  }
  if (kind === 'file') {
    try {
      return readFileSync(where, 'utf8').split('\n')[0]!;
    } catch (error) {
      throw new FerryError('SIGNER_FAILED', `cannot read the PIN of token "${spec.token}" from ${where}`, {
        cause: error,
      });
    }
  }
  throw new FerryError('KEY_FILE_INVALID', `pin-source "${spec.pinSource}" is neither env:NAME nor file:/path`);
}

/**
 * Opens the module, finds the token by its label, logs in with the PIN, runs `use`, and closes it all again: a
 * session lives for one operation, so nothing stays logged in between signatures or after a failure.
 */
function withSession<T>(spec: Pkcs11SignerSpec, use: (session: Session) => T): T {
  const pin = readPin(spec);
  const lib = binding();
  const p11 = new lib.PKCS11();
  try {
    p11.load(spec.module);
  } catch (error) {
    throw new FerryError('SIGNER_FAILED', `cannot load the PKCS#11 module ${spec.module}: ${describeCause(error)}`, {
      cause: error,
    });
  }
  let initialized = false;
  let session: Pkcs11Js.Handle | undefined;
  const where = `token "${spec.token}" (${spec.module})`;
  try {
    p11.C_Initialize();
    initialized = true;
    const slot = p11.C_GetSlotList(true).find((candidate) => p11.C_GetTokenInfo(candidate).label.trim() === spec.token);
    if (slot === undefined)
      throw new FerryError('SIGNER_FAILED', `no token labelled "${spec.token}" is present (module ${spec.module})`);
    session = p11.C_OpenSession(slot, lib.CKF_RW_SESSION | lib.CKF_SERIAL_SESSION);
    try {
      p11.C_Login(session, lib.CKU_USER, pin);
    } catch (error) {
      const code = (error as { code?: number }).code;
      if (code === lib.CKR_PIN_INCORRECT || code === lib.CKR_PIN_LEN_RANGE)
        throw new FerryError('SIGNER_PIN_INCORRECT', `${where} refused the PIN from ${spec.pinSource}`, {
          cause: error,
        });
      if (code === lib.CKR_PIN_LOCKED)
        throw new FerryError('SIGNER_FAILED', `${where} is locked: too many wrong PINs`, { cause: error });
      if (code !== lib.CKR_USER_ALREADY_LOGGED_IN) throw error;
    }
    return use({ p11, session, binding: lib });
  } catch (error) {
    if (error instanceof FerryError) throw error;
    throw new FerryError('SIGNER_FAILED', `${where}: ${describeCause(error)}`, { cause: error });
  } finally {
    // Closing is best effort: the outcome is already decided.
    const quietly = (step: () => void) => {
      try {
        step();
      } catch {
        /* already closed */
      }
    };
    if (session !== undefined) quietly(() => p11.C_CloseSession(session!));
    if (initialized) quietly(() => p11.C_Finalize());
    quietly(() => p11.close());
  }
}

/** The objects of `objectClass` labelled `spec.label`; more than one is refused, as ferry could not tell which. */
function findLabelled({ p11, session, binding: lib }: Session, spec: Pkcs11SignerSpec, objectClass: number) {
  p11.C_FindObjectsInit(session, [
    { type: lib.CKA_CLASS, value: objectClass },
    { type: lib.CKA_LABEL, value: spec.label },
  ]);
  const found = p11.C_FindObjects(session, 2);
  p11.C_FindObjectsFinal(session);
  if (found.length > 1)
    throw new FerryError(
      'SIGNER_FAILED',
      `token "${spec.token}" holds more than one key labelled "${spec.label}": give each key a label of its own`,
    );
  return found[0];
}

function noKey(spec: Pkcs11SignerSpec): FerryError {
  return new FerryError(
    'SIGNER_FAILED',
    `token "${spec.token}" (${spec.module}) holds no key labelled "${spec.label}"`,
  );
}

function publicKeyIn(opened: Session, spec: Pkcs11SignerSpec): KeyObject | undefined {
  const handle = findLabelled(opened, spec, opened.binding.CKO_PUBLIC_KEY);
  if (handle === undefined) return undefined;
  const [keyType, point] = opened.p11.C_GetAttributeValue(opened.session, handle, [
    { type: opened.binding.CKA_KEY_TYPE },
    { type: opened.binding.CKA_EC_POINT },
  ]);
  // A CK_ULONG, in the machine's byte order (8 bytes on 64-bit Linux).
  const typeBytes = keyType?.value;
  const type =
    typeBytes instanceof Buffer
      ? typeBytes.length === 8
        ? Number(typeBytes.readBigUInt64LE())
        : typeBytes.readUIntLE(0, typeBytes.length)
      : typeBytes;
  const value = point?.value;
  // CKA_EC_POINT is the 32-byte key, wrapped in a DER OCTET STRING by most tokens (SoftHSM2 included).
  const raw =
    value instanceof Buffer && value.length === 34 && value[0] === 0x04 && value[1] === 0x20
      ? value.subarray(2)
      : value;
  if (type !== CKK_EC_EDWARDS || !(raw instanceof Buffer) || raw.length !== 32)
    throw new FerryError('SIGNER_FAILED', `the key labelled "${spec.label}" in token "${spec.token}" is not ed25519`);
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

function generateKey(opened: Session, spec: Pkcs11SignerSpec): void {
  const { p11, session, binding: lib } = opened;
  const id = randomBytes(8);
  p11.C_GenerateKeyPair(
    session,
    { mechanism: CKM_EC_EDWARDS_KEY_PAIR_GEN },
    [
      { type: lib.CKA_TOKEN, value: true },
      { type: lib.CKA_VERIFY, value: true },
      { type: lib.CKA_LABEL, value: spec.label },
      { type: lib.CKA_ID, value: id },
      { type: lib.CKA_EC_PARAMS, value: EDWARDS25519_PARAMS },
    ],
    [
      { type: lib.CKA_TOKEN, value: true },
      { type: lib.CKA_SIGN, value: true },
      { type: lib.CKA_PRIVATE, value: true },
      { type: lib.CKA_SENSITIVE, value: true },
      { type: lib.CKA_EXTRACTABLE, value: false },
      { type: lib.CKA_LABEL, value: spec.label },
      { type: lib.CKA_ID, value: id },
    ],
  );
}

/**
 * The token's key labelled `spec.label`. With `create`, a token without one makes it (sensitive, never extractable);
 * an existing key of that label is taken as it is.
 */
export function pkcs11SigningKey(spec: Pkcs11SignerSpec, options: { readonly create?: boolean } = {}): SigningKey {
  const publicKey = withSession(spec, (opened) => {
    const found = publicKeyIn(opened, spec);
    if (found !== undefined) return found;
    if (options.create !== true) throw noKey(spec);
    generateKey(opened, spec);
    const made = publicKeyIn(opened, spec);
    if (made === undefined) throw noKey(spec);
    return made;
  });
  const signer = `the key labelled "${spec.label}" in token "${spec.token}"`;
  return signingKeyWith(publicKey, (data) =>
    checkedSignature(
      publicKey,
      data,
      withSession(spec, (opened) => {
        const key = findLabelled(opened, spec, opened.binding.CKO_PRIVATE_KEY);
        if (key === undefined) throw noKey(spec);
        opened.p11.C_SignInit(opened.session, { mechanism: CKM_EDDSA }, key);
        return opened.p11.C_Sign(opened.session, Buffer.from(data), Buffer.alloc(64));
      }),
      signer,
    ),
  );
}
