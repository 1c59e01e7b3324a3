import {
  CMSVersion,
  ContentInfo,
  EncryptedContentInfo,
  IssuerAndSerialNumber,
  KeyAgreeRecipientIdentifier,
  KeyAgreeRecipientInfo,
  OriginatorIdentifierOrKey,
  OriginatorInfo,
  OriginatorPublicKey,
  RecipientEncryptedKey,
  RecipientEncryptedKeys,
  RecipientInfo,
  RecipientInfos,
  UnprotectedAttributes,
  id_data,
  id_envelopedData,
  id_signedData,
} from '@peculiar/asn1-cms';
import { id_ecPublicKey } from '@peculiar/asn1-ecc';
import { AsnConvert, AsnProp, AsnPropTypes, OctetString } from '@peculiar/asn1-schema';
import {
  AlgorithmIdentifier,
  Certificate,
  KeyUsage,
  KeyUsageFlags,
  id_ce_keyUsage,
  type Name,
} from '@peculiar/asn1-x509';
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type KeyObject,
  type X509Certificate,
} from 'node:crypto';
import { FerryError } from '../../errors.js';

/**
 * The key envelope of an encrypted bundle (encrypted/envelope.der): the payload's AES-256-GCM key, wrapped for each
 * recipient certificate, as the CMS AuthEnvelopedData (RFC 5083) that `openssl cms -encrypt -aes-256-gcm -keyopt
 * ecdh_kdf_md:sha256` writes, with the content detached (the ciphertext is a file of its own). Each recipient is one
 * KeyAgreeRecipientInfo (RFC 5753): an ephemeral P-256 key agreed with the recipient's P-256 key, the ANSI X9.63
 * SHA-256 KDF, and the content key wrapped with AES-256 key wrap (RFC 3394). The GCM nonce sits in the algorithm's
 * parameters and the tag in the mac, so the envelope alone tells a device everything but the ciphertext.
 *
 * Pure: certificates, keys and bytes in, bytes out. Standard CMS, so OpenSSL can make and open what ferry opens and
 * makes, and an operator can inspect a stick's envelope with `openssl cms -cmsout -print -inform DER`.
 */

export interface ContentKey {
  /** The AES-256 key: 32 bytes. */
  readonly key: Buffer;
  /** The GCM nonce: 12 bytes. */
  readonly nonce: Buffer;
  /** The GCM tag over the whole ciphertext: 16 bytes. */
  readonly tag: Buffer;
}

export interface EnvelopeRecipient {
  /** The issuer of the recipient's certificate, RFC 4514 style (most specific first), e.g. "CN=ferry device CA". */
  readonly issuer: string;
  /** The certificate's serial number in upper-case hex, as node:crypto's X509Certificate.serialNumber prints it. */
  readonly serialNumber: string;
}

/** One key agreement: the originator's ephemeral public key and the content key wrapped for each of its recipients. */
interface KeyAgreement {
  readonly originator: KeyObject;
  readonly wrappedKeys: readonly Buffer[];
}

const AGREEMENTS = Symbol('key agreements');

export interface KeyEnvelope {
  readonly recipients: readonly EnvelopeRecipient[];
  readonly nonce: Buffer;
  readonly tag: Buffer;
  /** What openKeyEnvelope works on; only parseKeyEnvelope makes it. */
  readonly [AGREEMENTS]: readonly KeyAgreement[];
}

const ID_CT_AUTH_ENVELOPED_DATA = '1.2.840.113549.1.9.16.1.23';
const ID_AES256_GCM = '2.16.840.1.101.3.4.1.46';
const ID_AES256_CBC = '2.16.840.1.101.3.4.1.42';
const ID_AES256_WRAP = '2.16.840.1.101.3.4.1.45';
const DH_SINGLE_PASS_STD_DH_SHA256KDF = '1.3.132.1.11.1';

const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
/** A wrapped 32-byte key: the key and the 8-byte integrity check value of RFC 3394. */
const WRAPPED_KEY_BYTES = KEY_BYTES + 8;
/** The default initial value of RFC 3394 §2.2.3.1: unwrapping with a wrong key fails its check. */
const KEY_WRAP_IV = Buffer.from('A6A6A6A6A6A6A6A6', 'hex');
/** An uncompressed P-256 point: 0x04, then x and y of 32 bytes each. */
const P256_POINT_BYTES = 65;
/** The DER of the OBJECT IDENTIFIER prime256v1 (1.2.840.10045.3.1.7): an originator key's curve, when named. */
const PRIME256V1 = Buffer.from('06082a8648ce3d030107', 'hex');

/** Enough for a fleet of tens of thousands of devices, each a recipient (about 190 bytes each). */
const MAX_ENVELOPE_BYTES = 16 * 1024 * 1024;
const MAX_ENVELOPE_RECIPIENTS = 100_000;

const ENVELOPE_MEMBER = 'encrypted/envelope.der';

/*
 * Three structures asn1-cms does not carry. The schema is declared by calling asn1-schema's decorators directly, so
 * that the build needs no decorator support.
 */

/**
 * AuthEnvelopedData (RFC 5083 §2.1). Its attribute sets are SETs OF Attribute, the form asn1-cms declares as
 * EnvelopedData's UnprotectedAttributes.
 */
class AuthEnvelopedData {
  version: CMSVersion = CMSVersion.v0;
  originatorInfo?: OriginatorInfo;
  recipientInfos = new RecipientInfos();
  authEncryptedContentInfo = new EncryptedContentInfo();
  authAttrs?: UnprotectedAttributes;
  mac: ArrayBuffer = new ArrayBuffer(0);
  unauthAttrs?: UnprotectedAttributes;

  constructor(params: Partial<AuthEnvelopedData> = {}) {
    Object.assign(this, params);
  }
}
AsnProp({ type: AsnPropTypes.Integer })(AuthEnvelopedData.prototype, 'version');
AsnProp({ type: OriginatorInfo, context: 0, implicit: true, optional: true })(
  AuthEnvelopedData.prototype,
  'originatorInfo',
);
AsnProp({ type: RecipientInfos })(AuthEnvelopedData.prototype, 'recipientInfos');
AsnProp({ type: EncryptedContentInfo })(AuthEnvelopedData.prototype, 'authEncryptedContentInfo');
AsnProp({ type: UnprotectedAttributes, context: 1, implicit: true, optional: true })(
  AuthEnvelopedData.prototype,
  'authAttrs',
);
AsnProp({ type: AsnPropTypes.OctetString })(AuthEnvelopedData.prototype, 'mac');
AsnProp({ type: UnprotectedAttributes, context: 2, implicit: true, optional: true })(
  AuthEnvelopedData.prototype,
  'unauthAttrs',
);

/** GCMParameters (RFC 5084 §3.2); the tag length defaults to 12 bytes when absent. */
class GcmParameters {
  nonce: ArrayBuffer = new ArrayBuffer(0);
  icvLength = 12;

  constructor(params: Partial<GcmParameters> = {}) {
    Object.assign(this, params);
  }
}
AsnProp({ type: AsnPropTypes.OctetString })(GcmParameters.prototype, 'nonce');
AsnProp({ type: AsnPropTypes.Integer, defaultValue: 12 })(GcmParameters.prototype, 'icvLength');

/** ECC-CMS-SharedInfo (RFC 5753 §7.2): the KDF's SharedInfo. */
class EccCmsSharedInfo {
  keyInfo = new AlgorithmIdentifier();
  entityUInfo?: ArrayBuffer;
  suppPubInfo: ArrayBuffer = new ArrayBuffer(0);

  constructor(params: Partial<EccCmsSharedInfo> = {}) {
    Object.assign(this, params);
  }
}
AsnProp({ type: AlgorithmIdentifier })(EccCmsSharedInfo.prototype, 'keyInfo');
AsnProp({ type: AsnPropTypes.OctetString, context: 0, optional: true })(EccCmsSharedInfo.prototype, 'entityUInfo');
AsnProp({ type: AsnPropTypes.OctetString, context: 2 })(EccCmsSharedInfo.prototype, 'suppPubInfo');

/** The one key-wrap algorithm, with its parameters absent (RFC 3565 §2.3.2). */
const aes256Wrap = (): AlgorithmIdentifier => new AlgorithmIdentifier({ algorithm: ID_AES256_WRAP });

/**
 * The SharedInfo of every key agreement ferry writes or reads: the wrap algorithm, no user keying material, and the
 * KEK's length in bits as four big-endian bytes.
 */
const SHARED_INFO = Buffer.from(
  AsnConvert.serialize(
    new EccCmsSharedInfo({ keyInfo: aes256Wrap(), suppPubInfo: new Uint8Array([0, 0, 1, 0]).buffer }),
  ),
);

/** ANSI X9.63 KDF with SHA-256 (SEC 1 §3.6.1): SHA-256(Z || counter || SharedInfo) for counter = 1, 2, … */
function x963Kdf(sharedSecret: Buffer, sharedInfo: Buffer, length: number): Buffer {
  const blocks: Buffer[] = [];
  for (let counter = 1; blocks.length * 32 < length; counter++) {
    const counterBytes = Buffer.alloc(4);
    counterBytes.writeUInt32BE(counter);
    blocks.push(createHash('sha256').update(sharedSecret).update(counterBytes).update(sharedInfo).digest());
  }
  return Buffer.concat(blocks).subarray(0, length);
}

const keyEncryptionKey = (privateKey: KeyObject, publicKey: KeyObject): Buffer =>
  x963Kdf(diffieHellman({ privateKey, publicKey }), SHARED_INFO, KEY_BYTES);

function wrapKey(kek: Buffer, key: Buffer): Buffer {
  const cipher = createCipheriv('id-aes256-wrap', kek, KEY_WRAP_IV);
  return Buffer.concat([cipher.update(key), cipher.final()]);
}

/** The unwrapped key, or undefined when the integrity check fails: the key was wrapped for another recipient. */
function unwrapKey(kek: Buffer, wrapped: Buffer): Buffer | undefined {
  try {
    const decipher = createDecipheriv('id-aes256-wrap', kek, KEY_WRAP_IV);
    return Buffer.concat([decipher.update(wrapped), decipher.final()]);
  } catch {
    return undefined;
  }
}

const isP256 = (key: KeyObject): boolean =>
  key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';

function uncompressedPoint(publicKey: KeyObject): Buffer {
  const jwk = publicKey.export({ format: 'jwk' });
  return Buffer.concat([
    Buffer.from([4]),
    Buffer.from(jwk.x ?? '', 'base64url'),
    Buffer.from(jwk.y ?? '', 'base64url'),
  ]);
}

/** The P-256 public key at an uncompressed point; node:crypto refuses a point that is not on the curve. */
function p256PublicKey(point: Buffer): KeyObject {
  if (point.length !== P256_POINT_BYTES || point[0] !== 4) throw new Error('not an uncompressed P-256 point');
  return createPublicKey({
    key: {
      kty: 'EC',
      crv: 'P-256',
      x: point.subarray(1, 33).toString('base64url'),
      y: point.subarray(33).toString('base64url'),
    },
    format: 'jwk',
  });
}

const ATTRIBUTE_NAMES: Record<string, string> = {
  '2.5.4.3': 'CN',
  '2.5.4.5': 'serialNumber',
  '2.5.4.6': 'C',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.9': 'STREET',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '0.9.2342.19200300.100.1.1': 'UID',
  '0.9.2342.19200300.100.1.25': 'DC',
  '1.2.840.113549.1.9.1': 'emailAddress',
};

/** RFC 4514 §2.4's escaping of an attribute value. */
const escapeValue = (value: string): string =>
  value
    .replace(/[\\,+"<>;]/g, (character) => `\\${character}`)
    .replace(/^[ #]/, (character) => `\\${character}`)
    .replace(/ $/, '\\ ');

/** A name as RFC 4514 writes it: the most specific relative name first, attributes of one joined by "+". */
function nameToString(name: Name): string {
  return [...name]
    .reverse()
    .map((relative) =>
      [...relative]
        .map(
          (attribute) =>
            `${ATTRIBUTE_NAMES[attribute.type] ?? attribute.type}=${escapeValue(attribute.value.toString())}`,
        )
        .join('+'),
    )
    .join(',');
}

/** An INTEGER's content bytes as node:crypto (OpenSSL's BN_bn2hex) prints a serial: upper-case, no sign byte. */
function serialToString(serial: ArrayBuffer): string {
  const bytes = Buffer.from(serial);
  if (bytes.length === 0) return '0';
  let value = BigInt(`0x${bytes.toString('hex')}`);
  const negative = (bytes[0]! & 0x80) !== 0;
  if (negative) value = (1n << BigInt(bytes.length * 8)) - value;
  let hex = value.toString(16).toUpperCase();
  if (hex.length % 2 === 1 && value !== 0n) hex = `0${hex}`;
  return negative ? `-${hex}` : hex;
}

/** The certificate's issuer and serial number, exactly as it carries them: the recipient's identifier. */
function recipientIdentifier(certificate: X509Certificate): IssuerAndSerialNumber {
  const tbs = AsnConvert.parse(certificate.raw, Certificate).tbsCertificate;
  const keyUsage = tbs.extensions?.find((extension) => extension.extnID === id_ce_keyUsage);
  if (keyUsage !== undefined) {
    const usage = AsnConvert.parse(keyUsage.extnValue, KeyUsage);
    if ((usage.toNumber() & KeyUsageFlags.keyAgreement) === 0)
      throw new FerryError(
        'DEVICE_CERTIFICATE_INVALID',
        `the certificate ${describeCertificate(certificate)} is not for key agreement (its key usage lacks keyAgreement)`,
      );
  }
  return new IssuerAndSerialNumber({ issuer: tbs.issuer, serialNumber: tbs.serialNumber });
}

const describeCertificate = (certificate: X509Certificate): string =>
  `"${certificate.subject.replace(/\n/g, ', ')}" (serial ${certificate.serialNumber})`;

/**
 * The envelope of `content` for each certificate, as the DER of a ContentInfo of AuthEnvelopedData with the content
 * detached. Each recipient gets an ephemeral key of its own.
 */
export function sealKeyEnvelope(recipients: readonly X509Certificate[], content: ContentKey): Buffer {
  if (content.key.length !== KEY_BYTES || content.nonce.length !== NONCE_BYTES || content.tag.length !== TAG_BYTES)
    throw new RangeError('a content key is 32 bytes, with a 12-byte nonce and a 16-byte tag');
  if (recipients.length === 0)
    throw new FerryError('DEVICE_CERTIFICATE_INVALID', 'no certificate to encrypt the bundle to');
  const keyEncryptionAlgorithm = new AlgorithmIdentifier({
    algorithm: DH_SINGLE_PASS_STD_DH_SHA256KDF,
    parameters: AsnConvert.serialize(aes256Wrap()),
  });
  const recipientInfos = recipients.map((certificate) => {
    if (!isP256(certificate.publicKey))
      throw new FerryError(
        'DEVICE_CERTIFICATE_INVALID',
        `the certificate ${describeCertificate(certificate)} holds an ${certificate.publicKey.asymmetricKeyType ?? 'unknown'} key, not an EC P-256 key`,
      );
    const rid = recipientIdentifier(certificate);
    const ephemeral = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const wrapped = wrapKey(keyEncryptionKey(ephemeral.privateKey, certificate.publicKey), content.key);
    const info = new RecipientInfo({
      kari: new KeyAgreeRecipientInfo({
        version: CMSVersion.v3,
        originator: new OriginatorIdentifierOrKey({
          originatorKey: new OriginatorPublicKey({
            algorithm: new AlgorithmIdentifier({ algorithm: id_ecPublicKey }),
            publicKey: new Uint8Array(uncompressedPoint(ephemeral.publicKey)).buffer,
          }),
        }),
        keyEncryptionAlgorithm,
        recipientEncryptedKeys: new RecipientEncryptedKeys([
          new RecipientEncryptedKey({
            rid: new KeyAgreeRecipientIdentifier({ issuerAndSerialNumber: rid }),
            encryptedKey: new OctetString(wrapped),
          }),
        ]),
      }),
    });
    return new Uint8Array(AsnConvert.serialize(info));
  });
  const authEnveloped = new AuthEnvelopedData({
    version: CMSVersion.v0,
    recipientInfos: new RecipientInfos(),
    authEncryptedContentInfo: new EncryptedContentInfo({
      contentType: id_data,
      contentEncryptionAlgorithm: new AlgorithmIdentifier({
        algorithm: ID_AES256_GCM,
        parameters: AsnConvert.serialize(
          new GcmParameters({ nonce: new Uint8Array(content.nonce).buffer, icvLength: TAG_BYTES }),
        ),
      }),
    }),
    mac: new Uint8Array(content.tag).buffer,
  });
  const skeleton = new Uint8Array(
    AsnConvert.serialize(
      new ContentInfo({ contentType: ID_CT_AUTH_ENVELOPED_DATA, content: AsnConvert.serialize(authEnveloped) }),
    ),
  );
  const located = locateRecipientInfos(skeleton);
  if (located === undefined) throw new Error('the envelope written has no recipientInfos');
  return replaceRecipientInfos(skeleton, located, recipientInfos);
}

class EnvelopeFormError extends Error {}

/** A check of the form: a refusal naming what is wrong. */
function check(condition: boolean, what: string): asserts condition {
  if (!condition) throw new EnvelopeFormError(what);
}

/** Parses `der` as `type`, naming `what` when it does not parse. */
function parseAs<T>(der: ArrayBuffer | Uint8Array, type: new () => T, what: string): T {
  try {
    return AsnConvert.parse(der, type);
  } catch (error) {
    throw new EnvelopeFormError(`${what} does not parse (${error instanceof Error ? error.message : String(error)})`);
  }
}

/*
 * The recipient infos, tens of thousands of them for a fleet, are written and read one at a time, apart from the rest
 * of the envelope. The ASN.1 library builds a tree of objects for a whole document, which takes far more time and
 * memory than its bytes: as one document, an envelope of 10,000 recipients (2 MB) took some 10 s and 600 MB to read.
 * What splits them apart is a reader of DER values' headers, tags and lengths only.
 */

/** One DER value within a buffer: its tag byte, and where it starts, where its content starts and where it ends. */
interface DerValue {
  readonly tag: number;
  readonly start: number;
  readonly contentStart: number;
  readonly end: number;
}

/** The DER value at `offset`, which must end by `limit`. Definite lengths only: DER has no other. */
function derValueAt(bytes: Uint8Array, offset: number, limit: number): DerValue {
  check(limit - offset >= 2, 'truncated: a value is cut short');
  const tag = bytes[offset]!;
  check((tag & 0x1f) !== 0x1f, 'not DER here: a tag of more than one byte');
  let length = bytes[offset + 1]!;
  let contentStart = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    check(count !== 0, 'not DER: an indefinite length');
    check(count <= 4, 'not DER: a length of more than 4 bytes');
    check(limit - contentStart >= count, 'truncated: a length is cut short');
    length = 0;
    for (let index = 0; index < count; index++) length = length * 256 + bytes[contentStart + index]!;
    contentStart += count;
  }
  const end = contentStart + length;
  check(end <= limit, `truncated: ${limit - offset} bytes of the ${end - offset} a value's header says`);
  return { tag, start: offset, contentStart, end };
}

/** The DER values that fill `bytes` from `from` to `to`, one after the other. */
function derValues(bytes: Uint8Array, from: number, to: number): DerValue[] {
  const values: DerValue[] = [];
  for (let offset = from; offset < to; offset = values[values.length - 1]!.end)
    values.push(derValueAt(bytes, offset, to));
  return values;
}

const SEQUENCE = 0x30;
const SET = 0x31;
const CONTEXT_0 = 0xa0;

/** The DER of a value of `tag` whose content is `parts`, one after the other. */
function derEncode(tag: number, ...parts: Uint8Array[]): Buffer {
  const length = parts.reduce((sum, part) => sum + part.length, 0);
  let header: number[];
  if (length < 0x80) header = [tag, length];
  else {
    const bytes: number[] = [];
    for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256);
    header = [tag, 0x80 | bytes.length, ...bytes];
  }
  return Buffer.concat([Buffer.from(header), ...parts]);
}

/** Where, in a ContentInfo, its content and the recipientInfos SET in it are. */
interface RecipientInfosPlace {
  readonly contentInfo: DerValue;
  readonly explicitContent: DerValue;
  readonly content: DerValue;
  readonly recipientInfos: DerValue;
}

/**
 * The place of the recipientInfos in `der`, a ContentInfo whose content is a SEQUENCE holding a SET (AuthEnvelopedData
 * and EnvelopedData both are): the first SET among the content's fields, the only one outside a tag of its own. Not
 * found when `der` is of another shape: the ASN.1 reader then says what is wrong with it.
 */
function locateRecipientInfos(der: Uint8Array): RecipientInfosPlace | undefined {
  const contentInfo = derValueAt(der, 0, der.length);
  const fields = derValues(der, contentInfo.contentStart, contentInfo.end);
  if (fields.length !== 2 || fields[1]!.tag !== CONTEXT_0) return undefined;
  const explicitContent = fields[1]!;
  const inner = derValues(der, explicitContent.contentStart, explicitContent.end);
  if (inner.length !== 1 || inner[0]!.tag !== SEQUENCE) return undefined;
  const content = inner[0]!;
  const recipientInfos = derValues(der, content.contentStart, content.end).find((field) => field.tag === SET);
  return recipientInfos === undefined ? undefined : { contentInfo, explicitContent, content, recipientInfos };
}

/** `der` with the recipient infos at `place` replaced by `infos`, each the DER of one RecipientInfo. */
function replaceRecipientInfos(der: Uint8Array, place: RecipientInfosPlace, infos: readonly Uint8Array[]): Buffer {
  const content = derEncode(
    SEQUENCE,
    der.subarray(place.content.contentStart, place.recipientInfos.start),
    derEncode(SET, ...infos),
    der.subarray(place.recipientInfos.end, place.content.end),
  );
  return derEncode(
    SEQUENCE,
    der.subarray(place.contentInfo.contentStart, place.explicitContent.start),
    derEncode(CONTEXT_0, content),
  );
}

const CONTENT_TYPE_NAMES: Record<string, string> = {
  [id_data]: 'id-data',
  [id_signedData]: 'id-signedData',
  [id_envelopedData]: 'id-envelopedData (no authentication: ferry takes AuthEnvelopedData)',
};

const ALGORITHM_NAMES: Record<string, string> = {
  [ID_AES256_CBC]: 'aes256-CBC',
  '2.16.840.1.101.3.4.1.2': 'aes128-CBC',
  '2.16.840.1.101.3.4.1.6': 'aes128-GCM',
  '2.16.840.1.101.3.4.1.26': 'aes192-GCM',
  '2.16.840.1.101.3.4.1.5': 'aes128-wrap',
  '2.16.840.1.101.3.4.1.25': 'aes192-wrap',
  '1.3.132.1.11.0': 'dhSinglePass-stdDH-sha224kdf-scheme',
  '1.3.132.1.11.2': 'dhSinglePass-stdDH-sha384kdf-scheme',
  '1.3.132.1.11.3': 'dhSinglePass-stdDH-sha512kdf-scheme',
  '1.3.133.16.840.63.0.2': 'dhSinglePass-stdDH-sha1kdf-scheme',
};
const algorithmName = (oid: string): string => (ALGORITHM_NAMES[oid] ? `${ALGORITHM_NAMES[oid]} (${oid})` : oid);

const RECIPIENT_KINDS: Record<string, string> = {
  ktri: 'key transport',
  kekri: 'key-encryption key',
  pwri: 'password',
  ori: 'other',
};

function readRecipientInfo(
  info: RecipientInfo,
  index: number,
): { agreement: KeyAgreement; recipients: EnvelopeRecipient[] } {
  const at = `recipient info ${index + 1}`;
  const kind = Object.keys(RECIPIENT_KINDS).find((key) => info[key as keyof RecipientInfo] !== undefined);
  check(info.kari !== undefined, `${at} is a ${RECIPIENT_KINDS[kind ?? 'ori']} recipient, not a key agreement`);
  const kari = info.kari;
  check(kari.version === CMSVersion.v3, `${at} has version ${kari.version}, not 3`);
  const originatorKey = kari.originator.originatorKey;
  check(originatorKey !== undefined, `${at} names its originator instead of carrying its ephemeral key`);
  check(
    originatorKey.algorithm.algorithm === id_ecPublicKey,
    `${at}: the originator key is ${originatorKey.algorithm.algorithm}, not id-ecPublicKey`,
  );
  const curve = originatorKey.algorithm.parameters;
  check(
    curve === undefined || curve === null || Buffer.from(curve).equals(PRIME256V1),
    `${at}: the originator key is not on P-256`,
  );
  let originator: KeyObject;
  try {
    originator = p256PublicKey(Buffer.from(originatorKey.publicKey));
  } catch {
    throw new EnvelopeFormError(`${at}: the originator key is not a P-256 point`);
  }
  check(kari.ukm === undefined, `${at} carries user keying material, which ferry neither writes nor takes`);
  const scheme = kari.keyEncryptionAlgorithm;
  check(
    scheme.algorithm === DH_SINGLE_PASS_STD_DH_SHA256KDF,
    `${at}: the key agreement is ${algorithmName(scheme.algorithm)}, not dhSinglePass-stdDH-sha256kdf-scheme`,
  );
  check(scheme.parameters instanceof ArrayBuffer, `${at}: the key agreement names no key-wrap algorithm`);
  const wrap = parseAs(scheme.parameters, AlgorithmIdentifier, `${at}: the key-wrap algorithm`);
  check(
    wrap.algorithm === ID_AES256_WRAP,
    `${at}: the key wrap is ${algorithmName(wrap.algorithm)}, not id-aes256-wrap`,
  );
  check(wrap.parameters === undefined, `${at}: the key wrap has parameters, which id-aes256-wrap has none of`);
  check(kari.recipientEncryptedKeys.length > 0, `${at} wraps the key for no recipient`);
  const recipients: EnvelopeRecipient[] = [];
  const wrappedKeys: Buffer[] = [];
  for (const encrypted of kari.recipientEncryptedKeys) {
    const rid = encrypted.rid.issuerAndSerialNumber;
    check(rid !== undefined, `${at} names a recipient by key identifier, not by issuer and serial number`);
    const wrapped = Buffer.from(encrypted.encryptedKey.buffer);
    check(
      wrapped.length === WRAPPED_KEY_BYTES,
      `${at}: a wrapped key of ${wrapped.length} bytes, not ${WRAPPED_KEY_BYTES}`,
    );
    recipients.push({ issuer: nameToString(rid.issuer), serialNumber: serialToString(rid.serialNumber) });
    wrappedKeys.push(wrapped);
  }
  return { agreement: { originator, wrappedKeys }, recipients };
}

function readKeyEnvelope(der: Uint8Array): KeyEnvelope {
  check(der.length <= MAX_ENVELOPE_BYTES, `${der.length} bytes, more than the ${MAX_ENVELOPE_BYTES} allowed`);
  check(der.length >= 2 && der[0] === SEQUENCE, 'not DER: it does not start with a SEQUENCE');
  const whole = derValueAt(der, 0, der.length);
  check(whole.end === der.length, `${der.length - whole.end} bytes after the DER value`);
  const place = locateRecipientInfos(der);
  const infos = place === undefined ? [] : derValues(der, place.recipientInfos.contentStart, place.recipientInfos.end);
  check(
    infos.length <= MAX_ENVELOPE_RECIPIENTS,
    `${infos.length} recipient infos, more than the ${MAX_ENVELOPE_RECIPIENTS} allowed`,
  );
  // The rest of the envelope is read as one document, with no recipient info in it.
  const contentInfo = parseAs(
    place === undefined ? der : replaceRecipientInfos(der, place, []),
    ContentInfo,
    'the ContentInfo',
  );
  check(
    contentInfo.contentType === ID_CT_AUTH_ENVELOPED_DATA,
    `the content type is ${CONTENT_TYPE_NAMES[contentInfo.contentType] ?? contentInfo.contentType}, not id-ct-authEnvelopedData`,
  );
  const envelope = parseAs(contentInfo.content, AuthEnvelopedData, 'the AuthEnvelopedData');
  check(envelope.version === CMSVersion.v0, `AuthEnvelopedData version ${envelope.version}, not 0`);
  check(
    envelope.authAttrs === undefined,
    'authenticated attributes, which ferry neither writes nor checks (the GCM tag covers no attributes)',
  );
  const encrypted = envelope.authEncryptedContentInfo;
  check(encrypted.contentType === id_data, `the encrypted content type is ${encrypted.contentType}, not id-data`);
  const cipher = encrypted.contentEncryptionAlgorithm;
  check(
    cipher.algorithm === ID_AES256_GCM,
    `the content is encrypted with ${algorithmName(cipher.algorithm)}, not aes256-GCM`,
  );
  check(cipher.parameters instanceof ArrayBuffer, 'the aes256-GCM parameters are missing');
  const gcm = parseAs(cipher.parameters, GcmParameters, 'the aes256-GCM parameters');
  check(gcm.nonce.byteLength === NONCE_BYTES, `a GCM nonce of ${gcm.nonce.byteLength} bytes, not ${NONCE_BYTES}`);
  check(gcm.icvLength === TAG_BYTES, `a GCM tag length of ${gcm.icvLength} bytes, not ${TAG_BYTES}`);
  check(envelope.mac.byteLength === TAG_BYTES, `a mac of ${envelope.mac.byteLength} bytes, not ${TAG_BYTES}`);
  check(infos.length > 0, 'no recipient');
  const agreements: KeyAgreement[] = [];
  const recipients: EnvelopeRecipient[] = [];
  infos.forEach((value, index) => {
    const info = parseAs(der.subarray(value.start, value.end), RecipientInfo, `recipient info ${index + 1}`);
    const read = readRecipientInfo(info, index);
    agreements.push(read.agreement);
    recipients.push(...read.recipients);
    check(recipients.length <= MAX_ENVELOPE_RECIPIENTS, `more than the ${MAX_ENVELOPE_RECIPIENTS} recipients allowed`);
  });
  return {
    recipients,
    nonce: Buffer.from(gcm.nonce),
    tag: Buffer.from(envelope.mac),
    [AGREEMENTS]: agreements,
  };
}

/**
 * The envelope in `der`, its form checked: anything but the one form ferry writes and OpenSSL writes for
 * `-aes-256-gcm -keyopt ecdh_kdf_md:sha256` is refused as a damaged bundle, naming what is wrong. The encrypted
 * content, which OpenSSL carries inside and ferry beside, is neither needed nor read.
 */
export function parseKeyEnvelope(der: Uint8Array): KeyEnvelope {
  try {
    return readKeyEnvelope(der);
  } catch (error) {
    if (error instanceof EnvelopeFormError)
      throw new FerryError('BUNDLE_ARCHIVE_INVALID', `${ENVELOPE_MEMBER}: ${error.message}`);
    throw error;
  }
}

/** How many recipients the refusal names, to tell the operator which certificates the bundle was made for. */
const NAMED_RECIPIENTS = 3;

/**
 * The content key, unwrapped with the first of `keys` that is one of the envelope's recipients. Keys other than
 * P-256 private keys are passed over: a device holds keys of other kinds (its ed25519 device key) beside them.
 */
export function openKeyEnvelope(envelope: KeyEnvelope, keys: readonly KeyObject[]): ContentKey {
  for (const privateKey of keys) {
    if (privateKey.type !== 'private' || !isP256(privateKey)) continue;
    for (const agreement of envelope[AGREEMENTS]) {
      const kek = keyEncryptionKey(privateKey, agreement.originator);
      for (const wrapped of agreement.wrappedKeys) {
        const key = unwrapKey(kek, wrapped);
        if (key?.length === KEY_BYTES) return { key, nonce: envelope.nonce, tag: envelope.tag };
      }
    }
  }
  const count = envelope.recipients.length;
  const named = envelope.recipients
    .slice(0, NAMED_RECIPIENTS)
    .map((recipient) => `${recipient.issuer}/${recipient.serialNumber}`);
  if (count > NAMED_RECIPIENTS) named.push('…');
  throw new FerryError(
    'NOT_A_RECIPIENT',
    `this device holds no key the bundle is encrypted to (${count} recipient${count === 1 ? '' : 's'}: ${named.join(', ')})`,
  );
}
