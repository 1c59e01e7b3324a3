import { createCipheriv, createDecipheriv, createHash, type KeyObject } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { FerryError, describeCause } from '../../errors.js';
import type { ProgressListener } from '../../progress.js';
import type { EncryptedParts, SignedFileDigest } from '../../tuf/bundle-targets.js';
import { METADATA_MAX_BYTES } from '../../tuf/verify-metadata.js';
import { STREAM_READ_CHUNK } from '../../util/sparse-file.js';
import { extractPayloadTar, memberParts, readMemberCapped } from './bundle-archive.js';
import type { EnvelopeRecipient } from './key-envelope.js';

/**
 * Encrypted bundles (`export --encrypt-to`): one tar file whose members are, in this order,
 *
 *   encrypted/envelope.der   a CMS AuthEnvelopedData (RFC 5083): the content key wrapped for each recipient, the
 *                            AES-GCM nonce and tag; the content itself is the payload below (detached)
 *   tuf/…                    the bundle's metadata, plain, so that `show` and the signature checks need no key
 *   encrypted/payload        AES-256-GCM ciphertext of a tar of the bundle's ostree_repo/ and apps/
 *
 * The signed bundle-targets.json names the envelope's and the payload's length and SHA-256. A device checks both
 * against it before it decrypts a byte; then it decrypts while it reads, into the directory a plain tar bundle is
 * unpacked into, beside its storage. Nothing decrypted is written to the stick.
 */

export const ENVELOPE_MEMBER = 'encrypted/envelope.der';
export const PAYLOAD_MEMBER = 'encrypted/payload';
/** A CMS envelope of 100,000 recipients stays well under this. */
const ENVELOPE_MAX_BYTES = 16 * 1024 * 1024;
/** AES-GCM with a 96-bit nonce encrypts at most 2^39 - 256 bits under one key and nonce (NIST SP 800-38D). */
export const PAYLOAD_MAX_BYTES = 2 ** 36 - 32;

export const CONTENT_CIPHER = 'aes-256-gcm';

/** The content key of one encrypted bundle: fresh for each export, never reused. */
export interface ContentKeyParams {
  readonly key: Buffer;
  readonly nonce: Buffer;
}

function damaged(message: string): FerryError {
  return new FerryError('BUNDLE_ARCHIVE_INVALID', message);
}

function mismatch(message: string): FerryError {
  return new FerryError('ENCRYPTED_PAYLOAD_MISMATCH', message);
}

/**
 * The digests an encrypted bundle is checked by: its signed bundle-targets.json must name them. An encrypted file
 * whose metadata does not (another bundle's tuf/ put beside a payload) is refused, never decrypted.
 */
export function signedPartsOf(parts: EncryptedParts | undefined, file: string): EncryptedParts {
  if (parts === undefined)
    throw mismatch(`${file} carries an encrypted payload that its signed bundle-targets.json does not name`);
  return parts;
}

/** Tells an encrypted bundle from a plain tar by its first member's name (ustar's first 100 bytes). */
export async function isEncryptedBundleFile(file: string): Promise<boolean> {
  const handle = await fs.open(file, 'r');
  try {
    const head = Buffer.alloc(100);
    const { bytesRead } = await handle.read(head, 0, 100, 0);
    const end = head.indexOf(0);
    return head
      .subarray(0, end === -1 ? bytesRead : end)
      .toString('latin1')
      .startsWith('encrypted/');
  } finally {
    await handle.close();
  }
}

/** Counts and hashes what passes through. */
export class DigestCounter extends Transform {
  private readonly hash = createHash('sha256');
  length = 0;

  constructor(private readonly onBytes?: (bytes: number) => void) {
    super();
  }

  override _transform(
    chunk: Buffer,
    _encoding: BufferEncoding,
    callback: (error?: Error | null, data?: Buffer) => void,
  ) {
    this.hash.update(chunk);
    this.length += chunk.length;
    this.onBytes?.(this.length);
    callback(null, chunk);
  }

  digest(): SignedFileDigest {
    return { length: this.length, sha256: this.hash.digest('hex') };
  }
}

export function fileDigestOf(bytes: Uint8Array): SignedFileDigest {
  return { length: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
}

const discard = () => new Writable({ write: (_chunk, _encoding, done) => done() });

/** The AES-256-GCM encryption of a stream; its tag is `cipher.getAuthTag()` once the stream ended. */
export function contentCipher(params: ContentKeyParams) {
  return createCipheriv(CONTENT_CIPHER, params.key, params.nonce, { authTagLength: 16 });
}

/** What reading an encrypted bundle's members up to its payload found. */
interface BundleHead {
  readonly envelope: Buffer;
  readonly payloadLength: number;
}

/**
 * An encrypted bundle opened on the device: its tuf/ unpacked, its envelope read, its payload not yet touched. The
 * payload is decrypted only by unseal(), once the caller verified the metadata that names its digests.
 */
export interface SealedBundle {
  readonly file: string;
  /** Who the bundle is encrypted to, as the envelope names them (issuer and serial of each certificate). */
  recipients(): Promise<readonly EnvelopeRecipient[]>;
  /**
   * Checks the envelope and the ciphertext against the signed digests (39 before anything is decrypted), opens the
   * envelope with the first key that can (38 when none can), and decrypts the payload into the bundle directory.
   */
  unseal(parts: EncryptedParts, keys: readonly KeyObject[], progress?: ProgressListener): Promise<void>;
  /** The checks of unseal() that need no key: the envelope and the whole ciphertext against the signed digests. */
  checkCiphertext(parts: EncryptedParts, progress?: ProgressListener): Promise<void>;
}

/** Opens an encrypted bundle: its metadata into `stagingDir`/tuf (which must exist), its envelope into memory. */
export async function openSealedBundle(file: string, stagingDir: string): Promise<SealedBundle> {
  const head = await readHead(file, stagingDir);
  const envelopeModule = () => import('./key-envelope.js');
  const checkEnvelope = (parts: EncryptedParts) => {
    const envelopeDigest = fileDigestOf(head.envelope);
    if (envelopeDigest.sha256 !== parts.envelope.sha256 || envelopeDigest.length !== parts.envelope.length)
      throw mismatch(
        `${ENVELOPE_MEMBER}: ${envelopeDigest.length} bytes hashing to sha256:${envelopeDigest.sha256}, the signed bundle-targets.json names ${parts.envelope.length} bytes and sha256:${parts.envelope.sha256}; nothing was decrypted`,
      );
  };
  // The whole ciphertext is checked before a byte of it is decrypted: a changed stick is refused with nothing
  // written. Decrypting then reads it a second time (from the page cache, for a bundle that fits in memory).
  const checkPayload = async (parts: EncryptedParts, progress: ProgressListener | undefined) => {
    if (head.payloadLength !== parts.payload.length)
      throw mismatch(
        `${PAYLOAD_MEMBER}: ${head.payloadLength} bytes, the signed bundle-targets.json names ${parts.payload.length}; nothing was decrypted`,
      );
    const total = parts.payload.length;
    const checked = await withPayload(file, (payload) => {
      const counter = new DigestCounter((bytes) => progress?.({ phase: 'verify', bytes, total }));
      return pipeline(payload, counter, discard()).then(() => counter.digest());
    });
    if (checked.sha256 !== parts.payload.sha256)
      throw mismatch(
        `${PAYLOAD_MEMBER}: hashes to sha256:${checked.sha256}, the signed bundle-targets.json names sha256:${parts.payload.sha256}; nothing was decrypted`,
      );
  };
  return {
    file,
    recipients: async () => (await envelopeModule()).parseKeyEnvelope(head.envelope).recipients,
    checkCiphertext: async (parts, progress) => {
      checkEnvelope(parts);
      (await envelopeModule()).parseKeyEnvelope(head.envelope);
      await checkPayload(parts, progress);
    },
    unseal: async (parts, keys, progress) => {
      checkEnvelope(parts);
      // A device that is not a recipient learns it before the payload is read.
      const { parseKeyEnvelope, openKeyEnvelope } = await envelopeModule();
      const opened = openKeyEnvelope(parseKeyEnvelope(head.envelope), keys);
      await checkPayload(parts, progress);
      await decryptPayload(file, stagingDir, opened, parts.payload, progress);
    },
  };
}

/** Decrypts the payload into the bundle directory, hashing the ciphertext again as it goes by. */
async function decryptPayload(
  file: string,
  stagingDir: string,
  opened: { key: Buffer; nonce: Buffer; tag: Buffer },
  signed: SignedFileDigest,
  progress: ProgressListener | undefined,
): Promise<void> {
  const total = signed.length;
  let authentication: Error | undefined;
  const counter = new DigestCounter((bytes) => progress?.({ phase: 'decrypt', bytes, total }));
  try {
    await withPayload(file, async (payload) => {
      const decipher = createDecipheriv(CONTENT_CIPHER, opened.key, opened.nonce, { authTagLength: 16 });
      decipher.setAuthTag(opened.tag);
      // The tag is checked at the end of the stream: a failure there is the payload's, whatever the tar reader
      // then says about the stream it lost.
      decipher.on('error', (error) => {
        authentication ??= error;
      });
      // A failed read of the stick fails the stream the tar reader reads.
      counter.on('error', (error) => decipher.destroy(error));
      // The member is a streamx stream (tar-stream's): read through Node's own Readable, so that pipe() forwards.
      const source = Readable.from(payload, { objectMode: false });
      source.on('error', (error) => decipher.destroy(error));
      await extractPayloadTar(source.pipe(counter).pipe(decipher), stagingDir);
      // The tar's end may come before the cipher's: the rest of the stream is read, and the tag checked, here.
      if (!decipher.readableEnded) await pipeline(decipher, discard());
    });
  } catch (error) {
    if (authentication !== undefined)
      throw mismatch(`${PAYLOAD_MEMBER}: fails its AES-GCM authentication tag (${describeCause(authentication)})`);
    // The tag is known only at the end, and a changed payload fails the tar reader (or a digest) first: the payload
    // is read to its end once more, and a tag or digest that fails there is the cause to report.
    await checkTag(file, opened, signed);
    throw error;
  }
  if (authentication !== undefined)
    throw mismatch(`${PAYLOAD_MEMBER}: fails its AES-GCM authentication tag (${describeCause(authentication)})`);
  const read = counter.digest();
  if (read.sha256 !== signed.sha256 || read.length !== signed.length)
    throw mismatch(
      `${PAYLOAD_MEMBER}: changed while it was read (it hashed to sha256:${read.sha256} on the second read, the signed bundle-targets.json names sha256:${signed.sha256})`,
    );
}

/** Decrypts the whole payload, keeping nothing: 39 if it fails its tag or no longer matches its signed digest. */
async function checkTag(
  file: string,
  opened: { key: Buffer; nonce: Buffer; tag: Buffer },
  signed: SignedFileDigest,
): Promise<void> {
  const counter = new DigestCounter();
  const decipher = createDecipheriv(CONTENT_CIPHER, opened.key, opened.nonce, { authTagLength: 16 });
  decipher.setAuthTag(opened.tag);
  try {
    await withPayload(file, (payload) => pipeline(payload, counter, decipher, discard()));
  } catch (error) {
    throw mismatch(`${PAYLOAD_MEMBER}: fails its AES-GCM authentication tag (${describeCause(error)})`);
  }
  const read = counter.digest();
  if (read.sha256 !== signed.sha256)
    throw mismatch(
      `${PAYLOAD_MEMBER}: changed while it was read (it hashed to sha256:${read.sha256}, the signed bundle-targets.json names sha256:${signed.sha256})`,
    );
}

/**
 * Reads the members before the payload: the envelope into memory, each tuf/ file into `stagingDir`/tuf, with the
 * metadata size cap. The payload's header ends the walk: its length is all this needs of it. A member of any other
 * name, a second copy of one, a link or a special file is refused.
 */
async function readHead(file: string, stagingDir: string): Promise<BundleHead> {
  const tufDir = path.join(stagingDir, 'tuf');
  await fs.mkdir(tufDir, { recursive: true });
  let envelope: Buffer | undefined;
  let payloadLength: number | undefined;
  const seen = new Set<string>();
  await walkMembers(file, async (header, stream) => {
    const parts = memberParts(header.name);
    const name = parts.join('/');
    if (header.type === 'directory' && (name === 'tuf' || name === 'encrypted')) return 'next';
    if (header.type !== 'file' && header.type !== 'contiguous-file')
      throw damaged(`member "${header.name}": a ${header.type ?? 'special'} member; an encrypted bundle holds files`);
    if (seen.has(name)) throw damaged(`member "${header.name}": appears twice`);
    seen.add(name);
    if (name === PAYLOAD_MEMBER) {
      if (envelope === undefined) throw damaged(`${PAYLOAD_MEMBER} comes before ${ENVELOPE_MEMBER}`);
      payloadLength = header.size ?? 0;
      return 'stop';
    }
    if (name === ENVELOPE_MEMBER) {
      envelope = await readMemberCapped(stream, ENVELOPE_MAX_BYTES, name);
      return 'next';
    }
    if (parts.length === 2 && parts[0] === 'tuf') {
      const bytes = await readMemberCapped(stream, METADATA_MAX_BYTES, name);
      await fs.writeFile(path.join(tufDir, parts[1]!), bytes, { mode: 0o644 });
      return 'next';
    }
    throw damaged(
      `member "${header.name}": an encrypted bundle holds only ${ENVELOPE_MEMBER}, tuf/ and ${PAYLOAD_MEMBER}`,
    );
  });
  if (envelope === undefined) throw damaged(`${path.basename(file)} has no ${ENVELOPE_MEMBER}`);
  if (payloadLength === undefined) throw damaged(`${path.basename(file)} has no ${PAYLOAD_MEMBER}: it is truncated`);
  if (![...seen].some((name) => name.startsWith('tuf/')))
    throw damaged(`${path.basename(file)} holds no tuf/ metadata`);
  return { envelope, payloadLength };
}

/** Runs `use` on the payload member's content, a stream of exactly its length read from the stick. */
async function withPayload<T>(file: string, use: (payload: Readable) => Promise<T>): Promise<T> {
  let result: { value: T } | undefined;
  await walkMembers(file, async (header, stream) => {
    if (memberParts(header.name).join('/') !== PAYLOAD_MEMBER) return 'next';
    result = { value: await use(stream) };
    return 'stop';
  });
  if (result === undefined) throw damaged(`${path.basename(file)} has no ${PAYLOAD_MEMBER}: it changed while read`);
  return result.value;
}

type MemberVisit = (header: tar.Header, stream: Readable) => Promise<'next' | 'stop'>;

/**
 * Walks the tar's members in order; `visit` reads (or leaves) each member's stream and says whether to go on. A
 * member left unread is skipped. A broken tar, a failing read or a failing visit ends the walk with that error.
 */
async function walkMembers(file: string, visit: MemberVisit): Promise<void> {
  const input = createReadStream(file, { highWaterMark: STREAM_READ_CHUNK });
  const extract = tar.extract();
  await new Promise<void>((resolve, reject) => {
    let settled = false;
    const finish = (error?: unknown) => {
      if (settled) return;
      settled = true;
      input.destroy();
      extract.destroy();
      if (error === undefined) resolve();
      else
        reject(
          error instanceof FerryError ? error : damaged(`the tar is damaged or truncated: ${describeCause(error)}`),
        );
    };
    extract.on('entry', (header, stream, next) => {
      stream.on('error', () => undefined);
      // tar-stream's member streams are streamx streams, which keep no readableEnded: the end is tracked here.
      let ended = false;
      stream.on('end', () => {
        ended = true;
      });
      visit(header, stream as unknown as Readable).then(
        (decision) => {
          if (decision === 'stop') finish();
          else if (ended) next();
          else {
            stream.on('end', () => next());
            stream.resume();
          }
        },
        (error: unknown) => finish(error),
      );
    });
    extract.on('finish', () => finish());
    extract.on('error', (error: Error) => finish(error));
    input.on('error', (error) => finish(error));
    input.pipe(extract);
  });
}
