import type { Name, Pkcs10CertificateRequest } from '@peculiar/x509';
import { createHash, createPublicKey, randomBytes, webcrypto, X509Certificate, type KeyObject } from 'node:crypto';

/**
 * X.509 certificates and PKCS#10 requests of the factory's device CA, whose key is ed25519: the CA's own certificate,
 * device certificates for ed25519 device keys (they sign reports), and certificates for EC P-256 keys, the keys an
 * encrypted bundle's content key is wrapped for (a device's decryption key, a fleet key). A P-256 key is a
 * key-agreement key and nothing else here: its certificate says keyAgreement, never digitalSignature, and its request
 * is signed with ECDSA (SHA-256) by that key, the proof of possession an X25519 key could not give.
 *
 * @peculiar/x509 builds and reads them, and signs through WebCrypto, which is node:crypto's own ed25519 and ECDSA.
 * node:crypto parses and checks every certificate ferry reads (X509Certificate.verify, checkIssued) but cannot build
 * one or read a request; node-forge's X.509 and PKCS#10 layer takes RSA keys only ("OID is not RSA"). Keys and bytes
 * in, bytes out.
 */

type X509 = typeof import('@peculiar/x509');
let library: Promise<X509> | undefined;

/**
 * The library, loaded on first use: loading it takes some 40 ms of CPU, which every command line would pay at
 * start-up, while only the commands that make a CA, a request or a certificate use it.
 */
function x509(): Promise<X509> {
  library ??= (async () => {
    // The library resolves its algorithms through tsyringe, which needs the Reflect metadata API loaded first.
    await import('reflect-metadata');
    const loaded = await import('@peculiar/x509');
    loaded.cryptoProvider.set(webcrypto as unknown as Crypto);
    return loaded;
  })();
  return library;
}

const COMMON_NAME = '2.5.4.3';
const ED25519 = { name: 'Ed25519' } as const;
const ECDSA_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** The two key types a certificate of the CA may hold: what each key is for decides what its certificate says. */
type SubjectKeyType = 'ed25519' | 'p256';

/** Whether `key` (private or public) is an EC key on the P-256 curve (prime256v1). */
export function isP256Key(key: KeyObject): boolean {
  return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
}

function subjectKeyTypeOf(key: KeyObject): SubjectKeyType | undefined {
  if (key.asymmetricKeyType === 'ed25519') return 'ed25519';
  return isP256Key(key) ? 'p256' : undefined;
}

/** A name of one relative name holding one attribute, the common name: a device id, or the CA's name. */
const nameOf = (x: X509, commonName: string): Name => new x.Name([{ [COMMON_NAME]: [{ utf8String: commonName }] }]);

const spkiOf = (publicKey: KeyObject): Buffer => publicKey.export({ format: 'der', type: 'spki' });

async function webKeysOf(privateKey: KeyObject): Promise<CryptoKeyPair> {
  const subtle = webcrypto.subtle;
  const algorithm = subjectKeyTypeOf(privateKey) === 'p256' ? ECDSA_P256 : ED25519;
  return {
    privateKey: await subtle.importKey('pkcs8', privateKey.export({ format: 'der', type: 'pkcs8' }), algorithm, false, [
      'sign',
    ]),
    publicKey: await subtle.importKey('spki', spkiOf(createPublicKey(privateKey)), algorithm, true, ['verify']),
  } as CryptoKeyPair;
}

/**
 * The key identifier of RFC 5280 §4.2.1.2 method 1: the SHA-1 of the key's bits (the raw 32 bytes of an ed25519 key,
 * the point of a P-256 key). The SubjectPublicKeyInfo of either is short enough for one-byte DER lengths:
 * SEQUENCE { AlgorithmIdentifier, BIT STRING { unused-bits byte, key bits } }.
 */
function keyIdentifierOf(publicKey: KeyObject): string {
  const der = spkiOf(publicKey);
  const bitStringAt = 4 + der[3]!;
  return createHash('sha1')
    .update(der.subarray(bitStringAt + 3))
    .digest('hex');
}

function requireEd25519(key: KeyObject, what: string): void {
  if (key.asymmetricKeyType !== 'ed25519')
    throw new Error(`${what} is an ${key.asymmetricKeyType ?? 'unknown'} key, not ed25519`);
}

function requireSubjectKey(key: KeyObject, what: string): SubjectKeyType {
  const type = subjectKeyTypeOf(key);
  if (type === undefined) {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    throw new Error(
      `${what} is an ${key.asymmetricKeyType ?? 'unknown'}${curve === undefined ? '' : ` (${curve})`} key, not ed25519 or EC P-256`,
    );
  }
  return type;
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

/**
 * A PKCS#10 request for `commonName`, signed by the key it asks a certificate for (the proof of possession): with
 * ed25519 by an ed25519 key, with ECDSA and SHA-256 by a P-256 key.
 */
export async function createCertificateRequest(commonName: string, privateKey: KeyObject): Promise<string> {
  const type = requireSubjectKey(privateKey, 'the key');
  const x = await x509();
  const request = await x.Pkcs10CertificateRequestGenerator.create({
    name: nameOf(x, commonName),
    keys: await webKeysOf(privateKey),
    signingAlgorithm: type === 'p256' ? ECDSA_P256 : ED25519,
  });
  return x.PemConverter.encode(request.rawData, 'CERTIFICATE REQUEST').replace(/\r\n/g, '\n');
}

/** A request as read, with what the library keeps to itself: its version and its encoding done again. */
interface ReadRequest extends Pkcs10CertificateRequest {
  readonly version: number;
  /** The request encoded again from what was read: the same bytes only when what was read was DER. */
  readonly reencoded: Buffer;
}

function readRequest(x: X509, der: Uint8Array<ArrayBuffer>): ReadRequest {
  return new (class extends x.Pkcs10CertificateRequest implements ReadRequest {
    get version(): number {
      return this.asn.certificationRequestInfo.version;
    }

    get reencoded(): Buffer {
      return Buffer.from(new x.Pkcs10CertificateRequest(this.asn).rawData);
    }
  })(der);
}

/** The bytes of a PEM request, or the input itself, taken as DER. */
function derOf(x: X509, input: Uint8Array): Buffer {
  const text = Buffer.from(input).toString('latin1');
  if (!text.includes('-----BEGIN')) return Buffer.from(input);
  const [block] = x.PemConverter.decodeWithHeaders(text).filter((pem) => pem.type === 'CERTIFICATE REQUEST');
  if (block === undefined) throw new Error('not a DER certificate request (no CERTIFICATE REQUEST block)');
  return Buffer.from(block.rawData);
}

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/** The signature algorithm a request must carry for its key: ed25519 for ed25519, ECDSA with SHA-256 for P-256. */
function signedAsItsKeyRequires(request: ReadRequest, type: SubjectKeyType): boolean {
  try {
    const algorithm = request.signatureAlgorithm as Algorithm & { hash?: Algorithm };
    return type === 'ed25519'
      ? algorithm.name === ED25519.name
      : algorithm.name === ECDSA_P256.name && algorithm.hash?.name === ECDSA_P256.hash;
  } catch {
    return false;
  }
}

/**
 * Reads a PEM (or DER) PKCS#10 request and checks it: DER exactly, an ed25519 key signing with ed25519 or a P-256 key
 * signing with ECDSA and SHA-256, a signature by that key over the request, and a subject that is one common name.
 * Throws with the reason otherwise.
 */
export async function parseCertificateRequest(input: Uint8Array): Promise<CertificateRequest> {
  const x = await x509();
  const der = derOf(x, input);
  let request: ReadRequest;
  let reencoded: Buffer;
  try {
    // Only a SEQUENCE is DER: the library would take other bytes for hex or base64 text.
    if (der[0] !== 0x30) throw new Error('it does not start with a SEQUENCE');
    request = readRequest(x, new Uint8Array(der));
    reencoded = request.reencoded;
  } catch (error) {
    throw new Error(`not a DER certificate request (${messageOf(error)})`);
  }
  // The signature covers the request information only: equal bytes keep everything around it as its key made it.
  if (!reencoded.equals(der)) throw new Error('not in the distinguished encoding (DER)');
  if (request.version !== 0) throw new Error('not a version 1 request');
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: Buffer.from(request.publicKey.rawData), format: 'der', type: 'spki' });
  } catch (error) {
    throw new Error(`its public key cannot be read (${messageOf(error)})`);
  }
  const type = requireSubjectKey(publicKey, 'its public key');
  if (!signedAsItsKeyRequires(request, type))
    throw new Error(type === 'ed25519' ? 'not signed with ed25519' : 'not signed with ECDSA and SHA-256');
  let verified: boolean;
  try {
    verified = await request.verify(webcrypto as unknown as Crypto);
  } catch {
    verified = false;
  }
  if (!verified) throw new Error('its signature is not by the key it names: whoever made it does not hold that key');
  return { commonName: commonNameOf(request.subjectName), publicKey };
}

/** The one common name of a name of one relative name, as nameOf writes and a request for a device must carry. */
function commonNameOf(name: Name): string {
  const relativeNames = name.toJSON();
  const attributes = relativeNames.length === 1 ? Object.entries(relativeNames[0]!) : [];
  const [type, values] = attributes.length === 1 ? attributes[0]! : [];
  if (type !== 'CN' || values?.length !== 1) throw new Error('its subject is not one common name');
  return values[0]!;
}

export interface IssueOptions {
  readonly serial: Buffer;
  readonly subject: string;
  /** ed25519 or P-256; a CA's is ed25519. */
  readonly publicKey: KeyObject;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /**
   * A CA certificate (keyCertSign), or an end entity's: digitalSignature for an ed25519 key (a device key signs
   * reports), keyAgreement alone for a P-256 key (a decryption or fleet key only ever unwraps a bundle's content key).
   */
  readonly ca: boolean;
  /** Absent for the CA's self-signed certificate. */
  readonly issuer?: { readonly certificate: X509Certificate; readonly commonName: string };
  readonly signingKey: KeyObject;
}

/** What an end entity's key is for, by its type. */
export type EndEntityUsage = 'digitalSignature' | 'keyAgreement';

export function endEntityUsageOf(publicKey: KeyObject): EndEntityUsage {
  return requireSubjectKey(publicKey, 'the subject key') === 'p256' ? 'keyAgreement' : 'digitalSignature';
}

/** An X.509 v3 certificate signed with ed25519, as PEM. */
export async function issueCertificate(options: IssueOptions): Promise<string> {
  if (options.ca) requireEd25519(options.publicKey, 'the subject key');
  const usage = endEntityUsageOf(options.publicKey);
  requireEd25519(options.signingKey, 'the signing key');
  const issuerKey = options.issuer === undefined ? options.publicKey : options.issuer.certificate.publicKey;
  const x = await x509();
  const certificate = await x.X509CertificateGenerator.create({
    serialNumber: options.serial.toString('hex'),
    subject: nameOf(x, options.subject),
    issuer: nameOf(x, options.issuer?.commonName ?? options.subject),
    notBefore: options.notBefore,
    notAfter: options.notAfter,
    publicKey: new Uint8Array(spkiOf(options.publicKey)),
    signingKey: (await webKeysOf(options.signingKey)).privateKey,
    signingAlgorithm: ED25519,
    extensions: [
      new x.BasicConstraintsExtension(options.ca, undefined, true),
      new x.KeyUsagesExtension(
        options.ca
          ? x.KeyUsageFlags.keyCertSign | x.KeyUsageFlags.cRLSign
          : usage === 'keyAgreement'
            ? x.KeyUsageFlags.keyAgreement
            : x.KeyUsageFlags.digitalSignature,
        true,
      ),
      new x.SubjectKeyIdentifierExtension(keyIdentifierOf(options.publicKey)),
      new x.AuthorityKeyIdentifierExtension(keyIdentifierOf(issuerKey)),
    ],
  });
  // Parsed back by node:crypto: what this writes is what every reader of the certificate will see.
  return new X509Certificate(Buffer.from(certificate.rawData)).toString();
}

/**
 * The key usages a certificate's keyUsage extension lists (`keyAgreement`, `digitalSignature`…), or undefined when
 * it has none. node:crypto's `keyUsage` is the extended key usage, so the library reads it.
 */
export async function keyUsagesOf(certificate: X509Certificate): Promise<string[] | undefined> {
  const x = await x509();
  const extension = new x.X509Certificate(new Uint8Array(certificate.raw)).getExtension(x.KeyUsagesExtension);
  if (extension === null) return undefined;
  return Object.entries(x.KeyUsageFlags)
    .filter(([name, flag]) => typeof flag === 'number' && Number.isNaN(Number(name)) && (extension.usages & flag) !== 0)
    .map(([name]) => name);
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
