import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  X509Certificate,
  type KeyObject,
} from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { ContentInfo, EncryptedContent, EncryptedContentInfo, RecipientInfos } from '@peculiar/asn1-cms';
import { AsnArray, AsnConvert, AsnProp, AsnPropTypes, AsnType, AsnTypeTypes, OctetString } from '@peculiar/asn1-schema';
import {
  openKeyEnvelope,
  parseKeyEnvelope,
  sealKeyEnvelope,
  type ContentKey,
} from '../../src/bundle/format/key-envelope.js';
import { FerryError } from '../../src/errors.js';
import { tempDir } from '../support/factory.js';

/**
 * The key envelope of an encrypted bundle: the content key sealed for P-256 certificates, opened by each recipient's
 * key and by no other, read and written by OpenSSL too, and every envelope of another form refused with a reason.
 * The certificates are OpenSSL's: a device CA of ed25519 (as ferry's is) issuing P-256 key-agreement certificates.
 */

/** OpenSSL's output, or the test fails: a missing openssl is a failure, never a pass. */
async function openssl(...args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)('openssl', args, { encoding: 'buffer' });
  return stdout.toString('latin1');
}

/** The refusal `run` ends in: a FerryError of `outcome`, whose message is returned. */
function refusal(outcome: string, run: () => unknown): string {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof FerryError, `not a refusal: ${String(error)}`);
    assert.equal(error.outcome, outcome, error.message);
    return error.message;
  }
  assert.fail(`not refused: ${outcome} expected`);
}

interface Party {
  readonly certificate: X509Certificate;
  readonly certificateFile: string;
  readonly key: KeyObject;
  readonly keyFile: string;
}

let dir = '';
let ca = { certificate: '', key: '' };
let recipients: Party[] = [];
let outsider: KeyObject;
let rsaParty: Party;
let signingOnly: Party;

/** A key made by OpenSSL and a certificate for it from the CA, with the given key usage. */
async function party(name: string, keyOptions: string[], keyUsage: string, serial: string): Promise<Party> {
  const keyFile = path.join(dir, `${name}.key`);
  const requestFile = path.join(dir, `${name}.csr`);
  const extensionsFile = path.join(dir, `${name}.ext`);
  const certificateFile = path.join(dir, `${name}.crt`);
  await openssl('genpkey', ...keyOptions, '-out', keyFile);
  await openssl('req', '-new', '-key', keyFile, '-subj', `/CN=${name}`, '-out', requestFile);
  await fs.writeFile(extensionsFile, `keyUsage=critical,${keyUsage}\n`);
  await openssl(
    'x509',
    '-req',
    '-in',
    requestFile,
    '-CA',
    ca.certificate,
    '-CAkey',
    ca.key,
    '-set_serial',
    serial,
    '-days',
    '30',
    '-extfile',
    extensionsFile,
    '-out',
    certificateFile,
  );
  return {
    certificate: new X509Certificate(await fs.readFile(certificateFile)),
    certificateFile,
    key: createPrivateKey(await fs.readFile(keyFile)),
    keyFile,
  };
}

const P256 = ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'];

before(async () => {
  dir = await tempDir('key-envelope');
  ca = { certificate: path.join(dir, 'ca.crt'), key: path.join(dir, 'ca.key') };
  await openssl('genpkey', '-algorithm', 'ed25519', '-out', ca.key);
  // Two relative names, so that the order the issuer is written in is seen.
  await openssl(
    'req',
    '-new',
    '-x509',
    '-key',
    ca.key,
    '-subj',
    '/O=Example Factory/CN=ferry device CA',
    '-days',
    '30',
    '-out',
    ca.certificate,
  );
  // Serials with the high bit set (a sign byte in DER), a leading zero nibble, and 16 bytes.
  recipients = [
    await party('unit-1', P256, 'keyAgreement', '0xFF11'),
    await party('unit-2', P256, 'keyAgreement', '0x0A'),
    await party('fleet-a', P256, 'keyAgreement', '0x4d0f6a3c9b1e2d5f8a7c6b5e4d3c2b1a'),
  ];
  rsaParty = await party('rsa-unit', ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'], 'keyAgreement', '7');
  signingOnly = await party('signing-unit', P256, 'digitalSignature', '8');
  outsider = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
});

const newContentKey = (tag = randomBytes(16)): ContentKey => ({ key: randomBytes(32), nonce: randomBytes(12), tag });

/** AES-256-GCM of `message` with `key` and `nonce`, as a bundle's payload is encrypted. */
function encrypt(key: Buffer, nonce: Buffer, message: Buffer): { ciphertext: Buffer; tag: Buffer } {
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  const ciphertext = Buffer.concat([cipher.update(message), cipher.final()]);
  return { ciphertext, tag: cipher.getAuthTag() };
}

function decrypt(content: ContentKey, ciphertext: Buffer): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', content.key, content.nonce);
  decipher.setAuthTag(content.tag);
  return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
}

/*
 * The envelope's structures taken apart and put back with asn1-schema, without a schema of AuthEnvelopedData: its
 * fields as raw DER values (version, recipientInfos, authEncryptedContentInfo, mac when there is no originatorInfo).
 */
class DerSequence extends AsnArray<ArrayBuffer> {
  constructor(items?: ArrayBuffer[]) {
    super(items);
    Object.setPrototypeOf(this, DerSequence.prototype);
  }
}
AsnType({ type: AsnTypeTypes.Sequence, itemType: AsnPropTypes.Any })(DerSequence);

/** GCMParameters (RFC 5084), to write a nonce of another length. */
class GcmParameters {
  nonce: ArrayBuffer = new ArrayBuffer(0);
  icvLength = 12;
}
AsnProp({ type: AsnPropTypes.OctetString })(GcmParameters.prototype, 'nonce');
AsnProp({ type: AsnPropTypes.Integer, defaultValue: 12 })(GcmParameters.prototype, 'icvLength');

const FIELD = { recipientInfos: 1, authEncryptedContentInfo: 2, mac: 3 } as const;

/** The DER of a value of `tag` whose content is `parts`, one after the other. */
function derOf(tag: number, ...parts: Uint8Array[]): Buffer {
  const length = parts.reduce((sum, part) => sum + part.length, 0);
  const lengthBytes: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) lengthBytes.unshift(rest % 256);
  const header = length < 0x80 ? [tag, length] : [tag, 0x80 | lengthBytes.length, ...lengthBytes];
  return Buffer.concat([Buffer.from(header), ...parts]);
}

/** The envelope in `der` with the field at `index` of its AuthEnvelopedData replaced by what `change` makes of it. */
function rewriteField(der: Uint8Array, index: number, change: (field: ArrayBuffer) => ArrayBuffer): Buffer {
  const contentInfo = AsnConvert.parse(der, ContentInfo);
  const fields = AsnConvert.parse(contentInfo.content, DerSequence);
  fields[index] = change(fields[index]!);
  contentInfo.content = AsnConvert.serialize(new DerSequence([...fields]));
  return Buffer.from(AsnConvert.serialize(contentInfo));
}

function rewriteEncryptedContentInfo(der: Uint8Array, change: (info: EncryptedContentInfo) => void): Buffer {
  return rewriteField(der, FIELD.authEncryptedContentInfo, (field) => {
    const info = AsnConvert.parse(field, EncryptedContentInfo);
    change(info);
    return AsnConvert.serialize(info);
  });
}

/** The ciphertext an envelope carries inside (as OpenSSL writes it), not detached. */
function encryptedContentOf(der: Uint8Array): Buffer {
  const contentInfo = AsnConvert.parse(der, ContentInfo);
  const info = AsnConvert.parse(AsnConvert.parse(contentInfo.content, DerSequence)[2]!, EncryptedContentInfo);
  const content = info.encryptedContent;
  assert.ok(content !== undefined, 'the envelope carries no encrypted content');
  if (content.value !== undefined) return Buffer.from(content.value.buffer);
  return Buffer.concat((content.constructedValue ?? []).map((part) => Buffer.from(part.buffer)));
}

describe('the key envelope: sealed for certificates, opened by their keys', () => {
  test('sealed for three recipients, each key opens it to the same key, nonce and tag; each seal is new', () => {
    const content = newContentKey();
    const sealed = sealKeyEnvelope(
      recipients.map((recipient) => recipient.certificate),
      content,
    );
    const envelope = parseKeyEnvelope(sealed);
    assert.deepEqual(
      envelope.recipients,
      recipients.map((recipient) => ({
        issuer: 'CN=ferry device CA,O=Example Factory',
        serialNumber: recipient.certificate.serialNumber,
      })),
    );
    assert.deepEqual(
      envelope.recipients.map((recipient) => recipient.serialNumber),
      ['FF11', '0A', '4D0F6A3C9B1E2D5F8A7C6B5E4D3C2B1A'],
    );
    for (const recipient of recipients) {
      const opened = openKeyEnvelope(envelope, [recipient.key]);
      assert.ok(opened.key.equals(content.key));
      assert.ok(opened.nonce.equals(content.nonce));
      assert.ok(opened.tag.equals(content.tag));
    }
    // Ephemeral keys of its own each time: the same content sealed again is other bytes, opened the same.
    const again = sealKeyEnvelope([recipients[0]!.certificate], content);
    assert.ok(!again.equals(sealKeyEnvelope([recipients[0]!.certificate], content)));
    assert.ok(openKeyEnvelope(parseKeyEnvelope(again), [recipients[0]!.key]).key.equals(content.key));
  });

  test('a key that is not a recipient is refused (38) naming the recipients; keys of other kinds are passed over', () => {
    const envelope = parseKeyEnvelope(
      sealKeyEnvelope(
        recipients.map((recipient) => recipient.certificate),
        newContentKey(),
      ),
    );
    const ed25519 = generateKeyPairSync('ed25519').privateKey;
    const message = refusal('NOT_A_RECIPIENT', () =>
      openKeyEnvelope(envelope, [ed25519, rsaParty.key, outsider, createPublicKey(recipients[0]!.key)]),
    );
    assert.equal(
      message,
      'this device holds no key the bundle is encrypted to (3 recipients: CN=ferry device CA,O=Example Factory/FF11, ' +
        'CN=ferry device CA,O=Example Factory/0A, CN=ferry device CA,O=Example Factory/4D0F6A3C9B1E2D5F8A7C6B5E4D3C2B1A)',
    );
    refusal('NOT_A_RECIPIENT', () => openKeyEnvelope(envelope, []));
    // The device's ed25519 key and a stray RSA key beside its decryption key: the decryption key opens it.
    const opened = openKeyEnvelope(envelope, [ed25519, rsaParty.key, outsider, recipients[1]!.key]);
    assert.equal(opened.key.length, 32);
  });

  test('a certificate whose key is not P-256, or not for key agreement, or none at all, is refused at seal (19)', async () => {
    const content = newContentKey();
    const caCertificate = new X509Certificate(await fs.readFile(ca.certificate));
    assert.match(
      refusal('DEVICE_CERTIFICATE_INVALID', () =>
        sealKeyEnvelope([recipients[0]!.certificate, caCertificate], content),
      ),
      /ferry device CA.* holds an ed25519 key, not an EC P-256 key/,
    );
    assert.match(
      refusal('DEVICE_CERTIFICATE_INVALID', () => sealKeyEnvelope([rsaParty.certificate], content)),
      /CN=rsa-unit.* holds an rsa key, not an EC P-256 key/,
    );
    assert.match(
      refusal('DEVICE_CERTIFICATE_INVALID', () => sealKeyEnvelope([signingOnly.certificate], content)),
      /CN=signing-unit.* is not for key agreement/,
    );
    assert.match(
      refusal('DEVICE_CERTIFICATE_INVALID', () => sealKeyEnvelope([], content)),
      /no certificate/,
    );
  });

  test('a flipped byte in a wrapped key is refused as not a recipient (the unwrap integrity check), not a crash', () => {
    const content = newContentKey();
    const sealed = sealKeyEnvelope([recipients[0]!.certificate], content);
    const flipped = rewriteField(sealed, FIELD.recipientInfos, (field) => {
      const infos = AsnConvert.parse(field, RecipientInfos);
      const encrypted = infos[0]!.kari!.recipientEncryptedKeys[0]!;
      const wrapped = Buffer.from(encrypted.encryptedKey.buffer);
      wrapped[20] ^= 0x01;
      encrypted.encryptedKey = new OctetString(wrapped);
      return AsnConvert.serialize(infos);
    });
    assert.ok(openKeyEnvelope(parseKeyEnvelope(sealed), [recipients[0]!.key]).key.equals(content.key));
    refusal('NOT_A_RECIPIENT', () => openKeyEnvelope(parseKeyEnvelope(flipped), [recipients[0]!.key]));
  });

  test('any one byte of an envelope changed: refused (17 or 38) or opened, never another error', () => {
    const content = newContentKey();
    const sealed = sealKeyEnvelope([recipients[0]!.certificate], content);
    const outcomes = new Set<string>();
    for (let offset = 0; offset < sealed.length; offset++) {
      for (const mask of [0x01, 0x80]) {
        const changed = Buffer.from(sealed);
        changed[offset] ^= mask;
        try {
          const opened = openKeyEnvelope(parseKeyEnvelope(changed), [recipients[0]!.key]);
          // Opened: the key is the one sealed (a changed nonce or tag is caught by GCM when the payload is read).
          assert.ok(opened.key.equals(content.key), `offset ${offset}: opened to another key`);
          outcomes.add('opened');
        } catch (error) {
          assert.ok(error instanceof FerryError, `offset ${offset} mask ${mask}: ${String(error)}`);
          assert.ok(['BUNDLE_ARCHIVE_INVALID', 'NOT_A_RECIPIENT'].includes(error.outcome), error.message);
          outcomes.add(error.outcome);
        }
      }
    }
    assert.deepEqual([...outcomes].sort(), ['BUNDLE_ARCHIVE_INVALID', 'NOT_A_RECIPIENT', 'opened']);
  });
});

describe('the key envelope of a fleet: many recipients', () => {
  test('sealed for 1,000 certificates, it is read back and opened by a recipient key, and refused to any other', () => {
    const content = newContentKey();
    const certificates = Array.from({ length: 1000 }, (_, index) => recipients[index % 3]!.certificate);
    const envelope = parseKeyEnvelope(sealKeyEnvelope(certificates, content));
    assert.equal(envelope.recipients.length, 1000);
    assert.equal(envelope.recipients[999]!.serialNumber, recipients[0]!.certificate.serialNumber);
    assert.ok(openKeyEnvelope(envelope, [recipients[2]!.key]).key.equals(content.key));
    assert.match(
      refusal('NOT_A_RECIPIENT', () => openKeyEnvelope(envelope, [outsider])),
      /\(1000 recipients: CN=ferry device CA,O=Example Factory\/FF11, .*, …\)$/,
    );
  });

  test('more than 100,000 recipient infos are refused before any is read', () => {
    const sealed = sealKeyEnvelope([recipients[0]!.certificate], newContentKey());
    const fields = AsnConvert.parse(AsnConvert.parse(sealed, ContentInfo).content, DerSequence);
    const tooMany = Array.from({ length: 100_001 }, () => Buffer.from('a100', 'hex'));
    const authEnveloped = derOf(
      0x30,
      Buffer.from(fields[0]!),
      derOf(0x31, ...tooMany),
      Buffer.from(fields[FIELD.authEncryptedContentInfo]!),
      Buffer.from(fields[FIELD.mac]!),
    );
    const contentType = Buffer.from('060b2a864886f70d0109100117', 'hex'); // id-ct-authEnvelopedData
    const message = refusal('BUNDLE_ARCHIVE_INVALID', () =>
      parseKeyEnvelope(derOf(0x30, contentType, derOf(0xa0, authEnveloped))),
    );
    assert.equal(message, 'encrypted/envelope.der: 100001 recipient infos, more than the 100000 allowed');
  });
});

describe('the key envelope with OpenSSL', () => {
  test('OpenSSL opens what ferry seals: its ciphertext put inside, `openssl cms -decrypt` prints the message', async () => {
    const message = Buffer.from('a payload for unit-2 only\n');
    const key = randomBytes(32);
    const nonce = randomBytes(12);
    const { ciphertext, tag } = encrypt(key, nonce, message);
    const sealed = sealKeyEnvelope(
      recipients.map((recipient) => recipient.certificate),
      { key, nonce, tag },
    );
    const whole = rewriteEncryptedContentInfo(sealed, (info) => {
      info.encryptedContent = new EncryptedContent({ value: new OctetString(ciphertext) });
    });
    const file = path.join(dir, 'ferry-sealed.der');
    await fs.writeFile(file, whole);
    const recipient = recipients[1]!;
    const printed = await openssl(
      'cms',
      '-decrypt',
      '-binary',
      '-inform',
      'DER',
      '-in',
      file,
      '-inkey',
      recipient.keyFile,
      '-recip',
      recipient.certificateFile,
    );
    assert.equal(printed, message.toString('latin1'));
    // Its form is the one ferry reads back.
    assert.ok(openKeyEnvelope(parseKeyEnvelope(whole), [recipient.key]).key.equals(key));
  });

  test('ferry opens what OpenSSL seals (-aes-256-gcm, ECDH with the SHA-256 KDF), and the key decrypts the message', async () => {
    const message = Buffer.from('sealed by openssl cms\n');
    const messageFile = path.join(dir, 'message');
    const file = path.join(dir, 'openssl-sealed.der');
    await fs.writeFile(messageFile, message);
    await openssl(
      'cms',
      '-encrypt',
      '-binary',
      '-aes-256-gcm',
      '-recip',
      recipients[0]!.certificateFile,
      '-keyopt',
      'ecdh_kdf_md:sha256',
      '-recip',
      recipients[2]!.certificateFile,
      '-keyopt',
      'ecdh_kdf_md:sha256',
      '-outform',
      'DER',
      '-in',
      messageFile,
      '-out',
      file,
    );
    const der = await fs.readFile(file);
    const envelope = parseKeyEnvelope(der);
    assert.deepEqual(
      envelope.recipients.map((recipient) => recipient.serialNumber),
      [recipients[0]!.certificate.serialNumber, recipients[2]!.certificate.serialNumber],
    );
    for (const recipient of [recipients[0]!, recipients[2]!])
      assert.deepEqual(decrypt(openKeyEnvelope(envelope, [recipient.key]), encryptedContentOf(der)), message);
    refusal('NOT_A_RECIPIENT', () => openKeyEnvelope(envelope, [recipients[1]!.key]));
  });
});

describe('envelopes of another form are refused as a damaged bundle (17), naming what is wrong', () => {
  const sealedForUnit1 = (): Buffer => sealKeyEnvelope([recipients[0]!.certificate], newContentKey());

  const refusedAs = (der: Uint8Array, reason: RegExp): void => {
    const message = refusal('BUNDLE_ARCHIVE_INVALID', () => parseKeyEnvelope(der));
    assert.match(message, /^encrypted\/envelope\.der: /);
    assert.match(message, reason);
  };

  test('not DER, truncated, with bytes after it, or larger than 16 MiB', () => {
    refusedAs(Buffer.from('not an envelope'), /not DER/);
    refusedAs(Buffer.alloc(0), /not DER/);
    const sealed = sealedForUnit1();
    refusedAs(sealed.subarray(0, sealed.length - 5), /truncated/);
    refusedAs(sealed.subarray(0, 3), /truncated/);
    refusedAs(Buffer.concat([sealed, Buffer.from([0])]), /1 bytes after the DER value/);
    refusedAs(Buffer.alloc(16 * 1024 * 1024 + 1, 0x30), /more than the 16777216 allowed/);
    // A well-formed header over content that is not a ContentInfo.
    refusedAs(Buffer.from('3003020100', 'hex'), /ContentInfo does not parse/);
  });

  test('an EnvelopedData (no authentication), as `openssl cms -encrypt -aes-256-cbc` writes', async () => {
    const messageFile = path.join(dir, 'cbc-message');
    await fs.writeFile(messageFile, 'x');
    const der = Buffer.from(
      await openssl(
        'cms',
        '-encrypt',
        '-binary',
        '-aes-256-cbc',
        '-recip',
        recipients[0]!.certificateFile,
        '-outform',
        'DER',
        '-in',
        messageFile,
      ),
      'latin1',
    );
    refusedAs(der, /the content type is id-envelopedData .*not id-ct-authEnvelopedData/);
  });

  test("OpenSSL's default key agreement (the SHA-1 KDF)", async () => {
    const messageFile = path.join(dir, 'sha1-message');
    await fs.writeFile(messageFile, 'x');
    const der = Buffer.from(
      await openssl(
        'cms',
        '-encrypt',
        '-binary',
        '-aes-256-gcm',
        '-recip',
        recipients[0]!.certificateFile,
        '-outform',
        'DER',
        '-in',
        messageFile,
      ),
      'latin1',
    );
    refusedAs(der, /recipient info 1: the key agreement is dhSinglePass-stdDH-sha1kdf-scheme/);
  });

  test('CBC instead of GCM, a 16-byte nonce, a tag length of 12, a mac of 8 bytes', () => {
    const sealed = sealedForUnit1();
    refusedAs(
      rewriteEncryptedContentInfo(sealed, (info) => {
        info.contentEncryptionAlgorithm.algorithm = '2.16.840.1.101.3.4.1.42';
        info.contentEncryptionAlgorithm.parameters = AsnConvert.serialize(new OctetString(randomBytes(16)));
      }),
      /the content is encrypted with aes256-CBC \(2\.16\.840\.1\.101\.3\.4\.1\.42\), not aes256-GCM/,
    );
    const gcm = (nonceBytes: number, icvLength: number) =>
      rewriteEncryptedContentInfo(sealed, (info) => {
        const parameters = Object.assign(new GcmParameters(), {
          nonce: new Uint8Array(randomBytes(nonceBytes)).buffer,
          icvLength,
        });
        info.contentEncryptionAlgorithm.parameters = AsnConvert.serialize(parameters);
      });
    // The rewriting itself changes nothing the reader minds.
    assert.equal(parseKeyEnvelope(gcm(12, 16)).nonce.length, 12);
    refusedAs(gcm(16, 16), /a GCM nonce of 16 bytes, not 12/);
    refusedAs(gcm(12, 12), /a GCM tag length of 12 bytes, not 16/);
    refusedAs(
      rewriteField(sealed, FIELD.mac, () => AsnConvert.serialize(new OctetString(randomBytes(8)))),
      /a mac of 8 bytes, not 16/,
    );
  });
});
