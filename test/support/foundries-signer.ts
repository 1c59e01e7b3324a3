import { constants, createHash, createPrivateKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fioCanonicalJson } from '../../src/tuf/foundries/fio-canonical.js';
import { fioKeyIdOf, type FioKeyJson } from '../../src/tuf/foundries/fio-keys.js';

/**
 * A signer of the Foundries (fioctl / aktualizr Uptane) format, for tests and as a reference for writing it: keys
 * `{"keytype": "ED25519" | "RSA", "keyval": {"public": …}}` with aktualizr's key ids, signatures
 * `{"keyid", "method", "sig": <base64>}` over the canonical JSON of `signed`, and files written in canonical form as
 * the generators write them. FioStick holds a stick's `tuf/` files in memory, to forge one property at a time.
 */

type Json = Record<string, any>;
export type FioRoleName = 'root' | 'timestamp' | 'snapshot' | 'targets';

export interface FioSigningKey {
  readonly keyId: string;
  readonly json: FioKeyJson;
  /** The `method` its signatures carry. */
  readonly method: string;
  /** Signs bytes, returning the signature as the format carries it (base64). */
  sign(data: Uint8Array): string;
}

/**
 * The stick Foundries' own tools made, beside the project as CI has it (`../shared/fixtures/fio-offline/`):
 * bundle/tuf/ holds its metadata, keys/ its keys. Read-only: tests copy what they change.
 */
export const FIO_FIXTURE = fileURLToPath(new URL('../../../../shared/fixtures/fio-offline/', import.meta.url));
/** The fixture's metadata directory. */
export const FIO_FIXTURE_TUF = path.join(FIO_FIXTURE, 'bundle', 'tuf');

// The fixed DER prefix of an ed25519 PKCS#8 private key; the 32-byte seed follows it.
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

function ed25519Key(privateKey: KeyObject, publicHex: string): FioSigningKey {
  const json: FioKeyJson = { keytype: 'ED25519', keyval: { public: publicHex } };
  return {
    keyId: fioKeyIdOf(publicHex),
    json,
    method: 'ed25519',
    sign: (data) => sign(null, data, privateKey).toString('base64'),
  };
}

/** A key as aktualizr's generator stores it: 64 bytes of hex (seed, then public key) and the public key in hex. */
export function fioKeyFromHex(privateHex: string, publicHex: string): FioSigningKey {
  const seed = Buffer.from(privateHex.trim(), 'hex').subarray(0, 32);
  const privateKey = createPrivateKey({
    key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]),
    format: 'der',
    type: 'pkcs8',
  });
  return ed25519Key(privateKey, publicHex.trim());
}

/** A new ed25519 key, its public value in upper-case hex as fioctl writes it. */
export function newFioKey(): FioSigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  return ed25519Key(privateKey, raw.toString('hex').toUpperCase());
}

/** A new RSA key (PEM SubjectPublicKeyInfo, with its trailing newline, as aktualizr writes it), signing RSASSA-PSS. */
export function newFioRsaKey(bits = 2048, method = 'rsassa-pss-sha256'): FioSigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  const pem = publicKey.export({ format: 'pem', type: 'spki' }).toString();
  return {
    keyId: fioKeyIdOf(pem),
    json: { keytype: 'RSA', keyval: { public: pem } },
    method,
    sign: (data) =>
      sign('sha256', data, {
        key: privateKey,
        padding: constants.RSA_PKCS1_PSS_PADDING,
        saltLength: constants.RSA_PSS_SALTLEN_DIGEST,
      }).toString('base64'),
  };
}

export function signFio(signed: Json, keys: readonly FioSigningKey[]): Json {
  const bytes = Buffer.from(fioCanonicalJson(signed), 'utf8');
  return {
    signatures: keys.map((key) => ({ keyid: key.keyId, method: key.method, sig: key.sign(bytes) })),
    signed,
  };
}

/** A metadata file as the generators write it: the canonical form of the whole document. */
export function serializeFio(document: Json): Buffer {
  return Buffer.from(fioCanonicalJson(document), 'utf8');
}

/** The fixture's own keys, one per role. */
export async function fioFixtureKeys(): Promise<Record<FioRoleName, FioSigningKey>> {
  const read = (role: string, file: string) => fs.readFile(path.join(FIO_FIXTURE, 'keys', role, file), 'utf8');
  const keys = {} as Record<FioRoleName, FioSigningKey>;
  for (const role of ['root', 'timestamp', 'snapshot', 'targets'] as const) {
    keys[role] = fioKeyFromHex(await read(role, 'private.key'), await read(role, 'public.key'));
  }
  return keys;
}

/** The `tuf/` files of a stick, in memory. */
export class FioStick {
  constructor(readonly files: Map<string, Uint8Array>) {}

  static async fixture(): Promise<FioStick> {
    const dir = FIO_FIXTURE_TUF;
    const files = new Map<string, Uint8Array>();
    for (const name of (await fs.readdir(dir)).sort()) files.set(name, await fs.readFile(path.join(dir, name)));
    return new FioStick(files);
  }

  clone(): FioStick {
    return new FioStick(new Map(this.files));
  }

  json(name: string): Json {
    return JSON.parse(Buffer.from(this.files.get(name)!).toString('utf8'));
  }

  write(name: string, document: Json): void {
    this.files.set(name, serializeFio(document));
  }

  /** Rewrites `name` with `mutate(signed)` and the signatures of `keys` (none: unsigned). */
  resign(name: string, keys: readonly FioSigningKey[], mutate: (signed: Json) => Json = (signed) => signed): void {
    this.write(name, signFio(mutate(structuredClone(this.json(name).signed)), keys));
  }

  /** timestamp.json names snapshot.json as it now is (hashes, length, version), signed again by `timestampKey`. */
  restampSnapshot(timestampKey: FioSigningKey, mutate: (signed: Json) => Json = (signed) => signed): void {
    const snapshot = this.files.get('snapshot.json')!;
    const canonical = fioCanonicalJson(JSON.parse(Buffer.from(snapshot).toString('utf8')));
    this.resign('timestamp.json', [timestampKey], (signed) =>
      mutate({
        ...signed,
        meta: {
          'snapshot.json': {
            hashes: {
              sha256: createHash('sha256').update(canonical).digest('hex'),
              sha512: createHash('sha512').update(canonical).digest('hex'),
            },
            length: snapshot.byteLength,
            version: this.json('snapshot.json').signed.version,
          },
        },
      }),
    );
  }

  /**
   * snapshot.json names targets.json as it now is (hashes, length, version), signed again by `snapshotKey`, and
   * timestamp.json names that snapshot: a forged targets.json then fails only the check it was forged for.
   */
  restampTargets(snapshotKey: FioSigningKey, timestampKey: FioSigningKey): void {
    const targets = this.files.get('targets.json')!;
    const canonical = fioCanonicalJson(JSON.parse(Buffer.from(targets).toString('utf8')));
    this.resign('snapshot.json', [snapshotKey], (signed) => ({
      ...signed,
      meta: {
        ...signed.meta,
        'targets.json': {
          hashes: { sha256: createHash('sha256').update(canonical).digest('hex') },
          length: targets.byteLength,
          version: this.json('targets.json').signed.version,
        },
      },
    }));
    this.restampSnapshot(timestampKey);
  }

  /** Adds `(n+1).root.json`: the newest root on the stick, changed by `mutate`, signed by `keys`. */
  addRoot(keys: readonly FioSigningKey[], mutate: (signed: Json) => void): number {
    const newest = Math.max(
      ...[...this.files.keys()]
        .filter((name) => /^\d+\.root\.json$/.test(name))
        .map((name) => Number.parseInt(name, 10)),
    );
    const signed = structuredClone(this.json(`${newest}.root.json`).signed);
    signed.version = newest + 1;
    mutate(signed);
    this.write(`${newest + 1}.root.json`, signFio(signed, keys));
    return newest + 1;
  }
}

/** Puts `keys` as the only keys of `role` in a root's signed part, with a threshold. */
export function setFioRoleKeys(root: Json, role: FioRoleName, keys: readonly FioSigningKey[], threshold: number): void {
  for (const key of keys) root.keys[key.keyId] = key.json;
  root.roles[role] = { keyids: keys.map((key) => key.keyId), threshold };
}

/**
 * A copy of the fixture stick in `dir`, with `forged`'s `tuf/` files instead of the fixture's when given, and the
 * directories git does not keep (apps/ and ostree_repo/'s empty ones) made again. Returns the stick's directory.
 */
export async function copyFioFixtureStick(dir: string, forged?: FioStick): Promise<string> {
  await fs.cp(path.join(FIO_FIXTURE, 'bundle'), dir, { recursive: true });
  await fs.mkdir(path.join(dir, 'apps'), { recursive: true });
  for (const sub of ['tmp', 'extensions', 'state', 'refs/mirrors', 'refs/remotes']) {
    await fs.mkdir(path.join(dir, 'ostree_repo', sub), { recursive: true });
  }
  if (forged !== undefined) {
    const tufDir = path.join(dir, 'tuf');
    await fs.rm(tufDir, { recursive: true });
    await fs.mkdir(tufDir);
    for (const [name, bytes] of forged.files) await fs.writeFile(path.join(tufDir, name), bytes);
  }
  return dir;
}
