import { createHash, createPublicKey, randomBytes, sign, verify, X509Certificate, type KeyObject } from 'node:crypto';
import type forge from 'node-forge';
import asn1 from 'node-forge/lib/asn1.js';
import forgeUtil from 'node-forge/lib/util.js';

/**
 * X.509 certificates and PKCS#10 requests for ed25519 keys, the device keys' type.
 *
 * node:crypto signs and verifies ed25519 and parses and checks X.509 certificates (X509Certificate.verify,
 * checkIssued), but cannot build a certificate or read a request. node-forge's X.509 and PKCS#10 layer cannot either:
 * it reads and signs RSA keys only ("OID is not RSA"). Its ASN.1 DER codec is generic, so it encodes and decodes
 * the structures here while node:crypto does every signature. Pure: keys and bytes in, bytes out.
 */

type Asn1 = forge.asn1.Asn1;

/**
 * Strict DER, and BIT STRINGs kept as bytes: forge would otherwise try to read a key's or a signature's bits as
 * nested ASN.1. Its typings know only the older boolean argument; the options object is what the code takes.
 */
const decodeDer = (der: Uint8Array): Asn1 =>
  (asn1.fromDer as unknown as (input: forge.util.ByteStringBuffer, options: object) => Asn1)(
    forgeUtil.createBuffer(bin(der)),
    { strict: true, decodeBitStrings: false },
  );

const OID = {
  ed25519: '1.3.101.112',
  commonName: '2.5.4.3',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
} as const;

const UNIVERSAL = asn1.Class.UNIVERSAL;
const CONTEXT = asn1.Class.CONTEXT_SPECIFIC;

const bin = (bytes: Uint8Array): string => Buffer.from(bytes).toString('binary');
const bytesOf = (node: Asn1): Buffer => Buffer.from(asn1.toDer(node).getBytes(), 'binary');
const seq = (...items: Asn1[]): Asn1 => asn1.create(UNIVERSAL, asn1.Type.SEQUENCE, true, items);
const oid = (dotted: string): Asn1 => asn1.create(UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(dotted).getBytes());
const octets = (bytes: Uint8Array): Asn1 => asn1.create(UNIVERSAL, asn1.Type.OCTETSTRING, false, bin(bytes));
const bits = (bytes: Uint8Array, unused = 0): Asn1 =>
  asn1.create(UNIVERSAL, asn1.Type.BITSTRING, false, String.fromCharCode(unused) + bin(bytes));
const ed25519Algorithm = (): Asn1 => seq(oid(OID.ed25519));

/** A name of one attribute, the common name: a device id, or the CA's name. */
function nameOf(commonName: string): Asn1 {
  const attribute = seq(
    oid(OID.commonName),
    asn1.create(UNIVERSAL, asn1.Type.UTF8, false, forgeUtil.encodeUtf8(commonName)),
  );
  return seq(asn1.create(UNIVERSAL, asn1.Type.SET, true, [attribute]));
}

/** UTCTime through 2049, GeneralizedTime after, as RFC 5280 §4.1.2.5 requires. */
function timeOf(date: Date): Asn1 {
  return date.getUTCFullYear() < 2050
    ? asn1.create(UNIVERSAL, asn1.Type.UTCTIME, false, asn1.dateToUtcTime(date))
    : asn1.create(UNIVERSAL, asn1.Type.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(date));
}

function extension(id: string, critical: boolean, value: Asn1): Asn1 {
  return seq(
    oid(id),
    ...(critical ? [asn1.create(UNIVERSAL, asn1.Type.BOOLEAN, false, String.fromCharCode(0xff))] : []),
    octets(bytesOf(value)),
  );
}

function spkiOf(publicKey: KeyObject): Asn1 {
  return decodeDer(publicKey.export({ format: 'der', type: 'spki' }));
}

/** The key identifier of RFC 5280 §4.2.1.2 method 1: the SHA-1 of the key's bits (the raw 32 bytes for ed25519). */
function keyIdentifierOf(publicKey: KeyObject): Buffer {
  const der = publicKey.export({ format: 'der', type: 'spki' });
  return createHash('sha1')
    .update(der.subarray(der.length - 32))
    .digest();
}

function signed(tbs: Asn1, signingKey: KeyObject): Buffer {
  const signature = sign(null, bytesOf(tbs), signingKey);
  return bytesOf(seq(tbs, ed25519Algorithm(), bits(signature)));
}

function requireEd25519(key: KeyObject, what: string): void {
  if (key.asymmetricKeyType !== 'ed25519')
    throw new Error(`${what} is an ${key.asymmetricKeyType ?? 'unknown'} key, not ed25519`);
}

/** A serial number: 16 random bytes, positive and with no leading zero byte, so its DER is always 16 bytes. */
export function newSerial(): Buffer {
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x3f) | 0x40;
  return serial;
}

export interface CertificateRequest {
  /** The subject's common name: the device id. */
  readonly commonName: string;
  readonly publicKey: KeyObject;
}

/** A PKCS#10 request for `commonName`, signed by the key it asks a certificate for (the proof of possession). */
export function createCertificateRequest(commonName: string, privateKey: KeyObject): string {
  requireEd25519(privateKey, 'the key');
  const publicKey = createPublicKey(privateKey);
  const info = seq(
    asn1.create(UNIVERSAL, asn1.Type.INTEGER, false, String.fromCharCode(0)),
    nameOf(commonName),
    spkiOf(publicKey),
    asn1.create(CONTEXT, 0, true, []),
  );
  return toPem(signed(info, privateKey), 'CERTIFICATE REQUEST');
}

/**
 * Reads a PEM (or DER) PKCS#10 request and checks it: DER exactly, an ed25519 key, an ed25519 signature by that
 * key over the request, and a subject that is one common name. Throws with the reason otherwise.
 */
export function parseCertificateRequest(input: Uint8Array): CertificateRequest {
  const der = fromPem(Buffer.from(input), 'CERTIFICATE REQUEST');
  let request: Asn1;
  try {
    request = decodeDer(der);
  } catch (error) {
    throw new Error(`not a DER certificate request (${error instanceof Error ? error.message : String(error)})`);
  }
  if (!bytesOf(request).equals(der)) throw new Error('not in the distinguished encoding (DER)');
  const [info, algorithm, signature] = childrenOf(request, 3, 'the request');
  const [version, subject, spki] = childrenOf(info!, 4, 'the request information');
  if (bin(Buffer.from([0])) !== version!.value) throw new Error('not a version 1 request');
  if (
    asn1.derToOid(forgeUtil.createBuffer(String(childrenOf(algorithm!, 1, 'the algorithm')[0]!.value))) !== OID.ed25519
  )
    throw new Error('not signed with ed25519');
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: bytesOf(spki!), format: 'der', type: 'spki' });
  } catch (error) {
    throw new Error(`its public key cannot be read (${error instanceof Error ? error.message : String(error)})`);
  }
  requireEd25519(publicKey, 'its public key');
  const signatureBits = Buffer.from(String(signature!.value), 'binary');
  if (signatureBits[0] !== 0 || !verify(null, bytesOf(info!), publicKey, signatureBits.subarray(1)))
    throw new Error('its signature is not by the key it names: whoever made it does not hold that key');
  return { commonName: commonNameOf(subject!), publicKey };
}

function childrenOf(node: Asn1, count: number, what: string): Asn1[] {
  if (!Array.isArray(node.value) || node.value.length < count) throw new Error(`${what} is malformed`);
  return node.value;
}

/** The one common name of a name of one relative name, as nameOf writes and a request for a device must carry. */
function commonNameOf(name: Asn1): string {
  const rdns = childrenOf(name, 1, 'the subject');
  const attributes = rdns.length === 1 ? childrenOf(rdns[0]!, 1, 'the subject') : [];
  const [type, value] = attributes.length === 1 ? childrenOf(attributes[0]!, 2, 'the subject') : [];
  if (
    type === undefined ||
    value === undefined ||
    asn1.derToOid(forgeUtil.createBuffer(String(type.value))) !== OID.commonName
  )
    throw new Error('its subject is not one common name');
  return forgeUtil.decodeUtf8(String(value.value));
}

export interface IssueOptions {
  readonly serial: Buffer;
  readonly subject: string;
  readonly publicKey: KeyObject;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** A CA certificate (keyCertSign) or an end entity's (digitalSignature only). */
  readonly ca: boolean;
  /** Absent for the CA's self-signed certificate. */
  readonly issuer?: { readonly certificate: X509Certificate; readonly commonName: string };
  readonly signingKey: KeyObject;
}

/** An X.509 v3 certificate signed with ed25519, as PEM. */
export function issueCertificate(options: IssueOptions): string {
  requireEd25519(options.publicKey, 'the subject key');
  requireEd25519(options.signingKey, 'the signing key');
  const issuerKey = options.issuer === undefined ? options.publicKey : options.issuer.certificate.publicKey;
  const extensions = [
    extension(
      OID.basicConstraints,
      true,
      seq(...(options.ca ? [asn1.create(UNIVERSAL, asn1.Type.BOOLEAN, false, String.fromCharCode(0xff))] : [])),
    ),
    // keyCertSign and cRLSign (bits 5, 6) for the CA; digitalSignature (bit 0) for a device.
    extension(OID.keyUsage, true, options.ca ? bits(Buffer.from([0x06]), 1) : bits(Buffer.from([0x80]), 7)),
    extension(OID.subjectKeyIdentifier, false, octets(keyIdentifierOf(options.publicKey))),
    extension(OID.authorityKeyIdentifier, false, seq(asn1.create(CONTEXT, 0, false, bin(keyIdentifierOf(issuerKey))))),
  ];
  const tbs = seq(
    asn1.create(CONTEXT, 0, true, [asn1.create(UNIVERSAL, asn1.Type.INTEGER, false, String.fromCharCode(2))]),
    asn1.create(UNIVERSAL, asn1.Type.INTEGER, false, bin(options.serial)),
    ed25519Algorithm(),
    nameOf(options.issuer?.commonName ?? options.subject),
    seq(timeOf(options.notBefore), timeOf(options.notAfter)),
    nameOf(options.subject),
    spkiOf(options.publicKey),
    asn1.create(CONTEXT, 3, true, [seq(...extensions)]),
  );
  // Parsed back by node:crypto: what this writes is what every reader of the certificate will see.
  return new X509Certificate(signed(tbs, options.signingKey)).toString();
}

/** The common name of a certificate's subject as node:crypto prints it (`CN=<name>`), if that is all it holds. */
export function certificateCommonName(certificate: X509Certificate): string | undefined {
  const match = /^CN=([^\n]*)$/.exec(certificate.subject.trim());
  return match?.[1];
}

/** When a certificate's validity starts and ends. */
export function validityOf(certificate: X509Certificate): { notBefore: Date; notAfter: Date } {
  return { notBefore: new Date(certificate.validFrom), notAfter: new Date(certificate.validTo) };
}

function toPem(der: Buffer, label: string): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

function fromPem(input: Buffer, label: string): Buffer {
  const text = input.toString('latin1');
  const begin = `-----BEGIN ${label}-----`;
  const start = text.indexOf(begin);
  if (start < 0) return input;
  const end = text.indexOf(`-----END ${label}-----`, start);
  if (end < 0) throw new Error(`no END ${label} line`);
  return Buffer.from(text.slice(start + begin.length, end).replace(/\s+/g, ''), 'base64');
}
