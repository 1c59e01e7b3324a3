import { createHash } from 'node:crypto';
import { FerryError, describeCause } from '../../errors.js';
import { BUNDLE_TARGETS_FILE, wrongBundleType, type BundleTargets, type BundleType } from '../bundle-targets.js';
import { parseExpires } from '../expires.js';
import { assertNotExpired, type EffectiveTime } from '../time-floor.js';
import { METADATA_MAX_BYTES } from '../verify-metadata.js';
import { fioCanonicalJson } from './fio-canonical.js';
import { parseFioKey, type FioPublicKey } from './fio-keys.js';
import { checkFioSignatures, countFioSignatures, type FioRole } from './fio-signatures.js';

/**
 * The trusted state of the Foundries (fioctl / aktualizr Uptane) format, in the manner of tuf-js's
 * TrustedMetadataStore: bytes in, verified metadata out, one role at a time in the only order TUF allows (roots,
 * timestamp, snapshot, targets, then bundle-targets.json). Pure: no files, no clock; the caller reads the stick and
 * passes the effective time (device clock and time floor). A refusal is a FerryError with the outcome the ferry
 * format gives the same attack, and leaves nothing trusted: the caller keeps the state it started from.
 */

/** What a device keeps of this format between installs: the newest root, and the versions it last accepted. */
export interface FoundriesTrustedState {
  /** The bytes of the newest trusted N.root.json. */
  readonly root: Uint8Array;
  /** Absent before the first install from a stick of this format. */
  readonly versions?: FoundriesRoleVersions | undefined;
}

export interface FoundriesRoleVersions {
  readonly timestamp: number;
  readonly snapshot: number;
  readonly targets: number;
}

/** One entry of targets.json `targets`, hashes in lower case. */
export interface FioTargetInfo {
  readonly hashes: Readonly<Record<string, string>>;
  readonly length: number;
  readonly custom: Readonly<Record<string, unknown>>;
}

type Json = Record<string, unknown>;

interface Envelope {
  readonly signed: Json;
  readonly signatures: unknown;
  readonly version: number;
  readonly expires: Date;
}

interface FioRoot {
  readonly version: number;
  readonly expires: Date;
  readonly keys: ReadonlyMap<string, FioPublicKey>;
  readonly roles: Readonly<Record<TopRole, FioRole>>;
  readonly bytes: Uint8Array;
}

/** A role's entry in timestamp.json or snapshot.json `meta`. */
interface MetaEntry {
  readonly version: number;
  readonly length: number | undefined;
  readonly hashes: Readonly<Record<string, string>>;
}

type TopRole = 'root' | 'timestamp' | 'snapshot' | 'targets';
const TOP_ROLES: readonly TopRole[] = ['root', 'timestamp', 'snapshot', 'targets'];
/** The hashes aktualizr computes (Hash::Type); others are ignored, and at least one of these must be given. */
const HASH_ALGORITHMS = ['sha256', 'sha512'] as const;

function malformed(file: string, message: string): FerryError {
  return new FerryError('METADATA_MALFORMED', `tuf/${file}: ${message}`);
}

function parseJson(bytes: Uint8Array, file: string): unknown {
  if (bytes.byteLength > METADATA_MAX_BYTES) throw malformed(file, `more than the ${METADATA_MAX_BYTES} bytes allowed`);
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (error) {
    throw malformed(file, describeCause(error));
  }
}

const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const isCount = (value: unknown, min: number): value is number =>
  Number.isSafeInteger(value) && (value as number) >= min;

/** Reads the envelope every metadata file shares: `_type` capitalised as aktualizr writes it, version and expiry. */
function parseEnvelope(json: unknown, file: string, type: string): Envelope {
  if (!isObject(json) || !isObject(json['signed'])) throw malformed(file, 'needs "signed" and "signatures"');
  const signed = json['signed'];
  if (signed['_type'] !== type)
    throw malformed(file, `_type is ${JSON.stringify(signed['_type'])}, expected "${type}"`);
  if (!isCount(signed['version'], 1)) throw malformed(file, 'version must be a positive integer');
  const expires = parseExpires(signed['expires']);
  if (expires === undefined) {
    throw malformed(file, `expires ${JSON.stringify(signed['expires'])} is not YYYY-MM-DDTHH:MM:SSZ`);
  }
  return { signed, signatures: json['signatures'], version: signed['version'], expires };
}

function parseRoot(bytes: Uint8Array, file: string): FioRoot & { readonly envelope: Envelope } {
  const envelope = parseEnvelope(parseJson(bytes, file), file, 'Root');
  const { keys: keysJson, roles: rolesJson } = envelope.signed;
  if (!isObject(keysJson) || !isObject(rolesJson)) throw malformed(file, 'needs "keys" and "roles"');
  const keys = new Map<string, FioPublicKey>();
  for (const [keyId, key] of Object.entries(keysJson)) keys.set(keyId, parseFioKey(keyId, key, file));
  const roles = {} as Record<TopRole, FioRole>;
  for (const name of TOP_ROLES) {
    const role = rolesJson[name];
    if (
      !isObject(role) ||
      !Array.isArray(role['keyids']) ||
      !role['keyids'].every((id) => typeof id === 'string') ||
      !isCount(role['threshold'], 1)
    ) {
      throw malformed(file, `role ${name} needs keyids and a threshold of at least 1`);
    }
    roles[name] = { keyIds: role['keyids'] as string[], threshold: role['threshold'] };
  }
  return { version: envelope.version, expires: envelope.expires, keys, roles, bytes, envelope };
}

function parseMetaEntry(signed: Json, file: string, name: string): MetaEntry {
  const meta = signed['meta'];
  const entry = isObject(meta) ? meta[name] : undefined;
  if (!isObject(entry) || !isCount(entry['version'], 1)) throw malformed(file, `meta names no version of ${name}`);
  const length = entry['length'];
  if (length !== undefined && !isCount(length, 0)) throw malformed(file, `meta.${name}.length is not a length`);
  const hashes = entry['hashes'] ?? {};
  if (!isObject(hashes) || !Object.values(hashes).every((hash) => typeof hash === 'string')) {
    throw malformed(file, `meta.${name}.hashes must map algorithms to hex digests`);
  }
  // fioctl and aktualizr's generator write the digests in either case.
  const lower = Object.fromEntries(
    Object.entries(hashes).map(([name, hash]) => [name, (hash as string).toLowerCase()]),
  );
  return { version: entry['version'], length, hashes: lower };
}

/**
 * Checks a file against the hashes and length another role names for it. The hashes are of its canonical form, as
 * aktualizr computes them (ImageRepository::verifySnapshot), which is the file itself when written canonically, as
 * the generators do; the length is of the file as it is on the stick.
 */
function checkHashes(file: string, bytes: Uint8Array, json: unknown, entry: MetaEntry, namedBy: string): void {
  if (entry.length !== undefined && entry.length !== bytes.byteLength) {
    throw new FerryError(
      'SECURITY_ERROR',
      `tuf/${file}: hash check failed: ${bytes.byteLength} bytes, ${namedBy} says ${entry.length}`,
    );
  }
  const canonical = fioCanonicalJson(json);
  for (const algorithm of HASH_ALGORITHMS) {
    const expected = entry.hashes[algorithm];
    if (expected === undefined) continue;
    const actual = createHash(algorithm).update(canonical, 'utf8').digest('hex');
    if (actual !== expected) {
      throw new FerryError(
        'SECURITY_ERROR',
        `tuf/${file}: hash check failed: its ${algorithm} is ${actual}, ${namedBy} says ${expected}`,
      );
    }
  }
}

export class FoundriesMetadataStore {
  private root: FioRoot;
  private readonly trustedVersions: FoundriesRoleVersions | undefined;
  private readonly time: EffectiveTime;
  private timestamp: { version: number; snapshot: MetaEntry } | undefined;
  private snapshot: { version: number; targets: MetaEntry } | undefined;
  private targets: { version: number; entries: ReadonlyMap<string, FioTargetInfo> } | undefined;

  /** The device's trusted root must parse and carry its own signatures; anything else is a damaged device state. */
  constructor(trusted: FoundriesTrustedState, time: EffectiveTime) {
    try {
      const root = parseRoot(trusted.root, 'root.json');
      this.checkSignedBy(root, 'root', 'root.json', root.envelope);
      this.root = root;
    } catch (error) {
      throw new FerryError(
        'DEVICE_STATE_UNREADABLE',
        `the trusted Foundries root is not valid: ${describeCause(error)}`,
        { cause: error },
      );
    }
    this.trustedVersions = trusted.versions;
    this.time = time;
  }

  get rootVersion(): number {
    return this.root.version;
  }

  /**
   * Takes N.root.json for N = the trusted version + 1: it must be signed by a threshold of the trusted root's root
   * keys and of its own, so that neither the old keys alone nor a new key alone can move the trust.
   */
  updateRoot(bytes: Uint8Array): void {
    if (this.timestamp !== undefined) throw new Error('roots are updated before timestamp.json');
    const expected = this.root.version + 1;
    const file = `${expected}.root.json`;
    const next = parseRoot(bytes, file);
    this.checkSignedBy(this.root, 'root', file, next.envelope);
    this.checkSignedBy(next, 'root', file, next.envelope);
    if (next.version !== expected) {
      throw new FerryError('SECURITY_ERROR', `tuf/${file}: version check failed: it is version ${next.version}`);
    }
    this.root = next;
  }

  /** Ends the root walk: the newest root must not have expired. */
  private finishRoots(): void {
    assertNotExpired(`tuf/${this.root.version}.root.json`, this.root.expires, this.time);
  }

  updateTimestamp(bytes: Uint8Array): void {
    if (this.timestamp !== undefined) throw new Error('timestamp.json is already loaded');
    this.finishRoots();
    const file = 'timestamp.json';
    const envelope = parseEnvelope(parseJson(bytes, file), file, 'Timestamp');
    const snapshot = parseMetaEntry(envelope.signed, file, 'snapshot.json');
    this.checkSignedBy(this.root, 'timestamp', file, envelope);
    // Signed by the trusted keys but older: an honest older stick (or a replayed one), not a forgery.
    const trusted = this.trustedVersions?.timestamp;
    if (trusted !== undefined && envelope.version < trusted) {
      throw new FerryError(
        'METADATA_OLDER_THAN_TRUSTED',
        `tuf/${file}: this stick is older than the metadata this device trusts (timestamp ${envelope.version} < ${trusted}): export a fresh stick`,
      );
    }
    // aktualizr refuses a snapshot it cannot check by hash; so does ferry, before a byte of it counts.
    if (!HASH_ALGORITHMS.some((algorithm) => snapshot.hashes[algorithm] !== undefined)) {
      throw new FerryError(
        'SECURITY_ERROR',
        `tuf/${file}: hash check failed: it names no sha256 or sha512 of snapshot.json`,
      );
    }
    assertNotExpired(`tuf/${file}`, envelope.expires, this.time);
    this.timestamp = { version: envelope.version, snapshot };
  }

  updateSnapshot(bytes: Uint8Array): void {
    if (this.timestamp === undefined) throw new Error('snapshot.json comes after timestamp.json');
    if (this.snapshot !== undefined) throw new Error('snapshot.json is already loaded');
    const file = 'snapshot.json';
    const json = parseJson(bytes, file);
    checkHashes(file, bytes, json, this.timestamp.snapshot, 'timestamp.json');
    const envelope = parseEnvelope(json, file, 'Snapshot');
    const targets = parseMetaEntry(envelope.signed, file, 'targets.json');
    this.checkSignedBy(this.root, 'snapshot', file, envelope);
    this.checkVersion(file, envelope.version, this.timestamp.snapshot.version, 'timestamp.json');
    this.checkNotRolledBack(file, envelope.version, this.trustedVersions?.snapshot);
    assertNotExpired(`tuf/${file}`, envelope.expires, this.time);
    this.snapshot = { version: envelope.version, targets };
  }

  updateTargets(bytes: Uint8Array): void {
    if (this.snapshot === undefined) throw new Error('targets.json comes after snapshot.json');
    if (this.targets !== undefined) throw new Error('targets.json is already loaded');
    const file = 'targets.json';
    const json = parseJson(bytes, file);
    // Hashes of targets.json are optional in snapshot.json; when given, they must match (as in aktualizr).
    checkHashes(file, bytes, json, this.snapshot.targets, 'snapshot.json');
    const envelope = parseEnvelope(json, file, 'Targets');
    const entries = this.parseTargets(envelope.signed, file);
    this.checkSignedBy(this.root, 'targets', file, envelope);
    this.checkVersion(file, envelope.version, this.snapshot.targets.version, 'snapshot.json');
    this.checkNotRolledBack(file, envelope.version, this.trustedVersions?.targets);
    assertNotExpired(`tuf/${file}`, envelope.expires, this.time);
    this.targets = { version: envelope.version, entries };
  }

  /** A target of the verified targets.json, or undefined when it lists none of that name. */
  targetInfo(name: string): FioTargetInfo | undefined {
    if (this.targets === undefined) throw new Error('targets.json is not loaded');
    return this.targets.entries.get(name);
  }

  /**
   * `bundle-targets.json`: which targets the stick carries (`x-fio-offline-bundle`), signed by a threshold of the
   * targets keys of the newest root. It carries no signing time, so it leaves a device's time floor where it is.
   */
  verifyBundleTargets(
    bytes: Uint8Array,
    options: {
      readonly expectedType?: BundleType | undefined;
      /** `count`: a production bundle short of its targets signatures verifies, and says how many it lacks. */
      readonly signatures?: 'require' | 'count' | undefined;
    } = {},
  ): BundleTargets {
    if (this.targets === undefined) throw new Error('bundle-targets.json comes after targets.json');
    const file = BUNDLE_TARGETS_FILE;
    const envelope = parseEnvelope(parseJson(bytes, file), file, 'Targets');
    const info = envelope.signed['x-fio-offline-bundle'];
    if (
      !isObject(info) ||
      (info['type'] !== 'ci' && info['type'] !== 'prod') ||
      typeof info['tag'] !== 'string' ||
      !Array.isArray(info['targets']) ||
      !info['targets'].every((name) => typeof name === 'string')
    ) {
      throw malformed(file, 'x-fio-offline-bundle needs type ("ci" or "prod"), tag and a list of target names');
    }
    // ferry's delta sticks name their base here too (fioctl writes no deltas; aklite ignores the field).
    const base = info['base'];
    if (
      base !== undefined &&
      (!isObject(base) ||
        typeof base['target'] !== 'string' ||
        typeof base['commit'] !== 'string' ||
        !/^[0-9a-f]{64}$/.test(base['commit']))
    ) {
      throw malformed(file, 'x-fio-offline-bundle.base needs a target name and its 64-hex commit');
    }
    const type = info['type'];
    const signedBy = {
      file,
      roleName: 'targets',
      role: this.root.roles.targets,
      keys: this.root.keys,
      signed: envelope.signed,
      signatures: envelope.signatures,
    };
    // fioctl signs a production bundle with the offline targets keys one at a time (sign-bundle): until the last
    // of them has signed, `count` reports how many are missing, as ferry does for its own production bundles.
    const counting = options.signatures === 'count' && type === 'prod';
    const valid = counting ? countFioSignatures(signedBy) : checkFioSignatures(signedBy);
    if (options.expectedType !== undefined && type !== options.expectedType) {
      throw wrongBundleType(type, options.expectedType);
    }
    assertNotExpired(`tuf/${file}`, envelope.expires, this.time);
    return {
      type,
      tag: info['tag'],
      tags: [info['tag']],
      offlineSignaturesMissing: Math.max(0, this.root.roles.targets.threshold - valid),
      ...(base === undefined ? {} : { base: { target: base['target'] as string, commit: base['commit'] as string } }),
      targets: [...(info['targets'] as string[])],
      expires: envelope.expires,
      version: envelope.version,
      signedAt: undefined,
    };
  }

  /** What the device keeps once an install from this stick goes ahead. */
  trustedState(): FoundriesTrustedState {
    if (this.timestamp === undefined || this.snapshot === undefined || this.targets === undefined) {
      throw new Error('the trusted state is complete only after targets.json');
    }
    return {
      root: this.root.bytes,
      versions: { timestamp: this.timestamp.version, snapshot: this.snapshot.version, targets: this.targets.version },
    };
  }

  private checkSignedBy(root: FioRoot, role: TopRole, file: string, envelope: Envelope): void {
    checkFioSignatures({
      file,
      roleName: role,
      role: root.roles[role],
      keys: root.keys,
      signed: envelope.signed,
      signatures: envelope.signatures,
    });
  }

  /** Mix and match: a role must be the version the role above it names. */
  private checkVersion(file: string, version: number, named: number, namedBy: string): void {
    if (version !== named) {
      throw new FerryError(
        'SECURITY_ERROR',
        `tuf/${file}: version check failed: it is version ${version}, ${namedBy} names version ${named}`,
      );
    }
  }

  private checkNotRolledBack(file: string, version: number, trusted: number | undefined): void {
    if (trusted !== undefined && version < trusted) {
      throw new FerryError(
        'SECURITY_ERROR',
        `tuf/${file}: version check failed: version ${version} is less than the trusted version ${trusted}`,
      );
    }
  }

  private parseTargets(signed: Json, file: string): Map<string, FioTargetInfo> {
    const targets = signed['targets'];
    if (!isObject(targets)) throw malformed(file, 'needs "targets"');
    const entries = new Map<string, FioTargetInfo>();
    for (const [name, entry] of Object.entries(targets)) {
      if (!isObject(entry) || !isObject(entry['hashes']) || !isCount(entry['length'], 0)) {
        throw malformed(file, `target ${name} needs hashes and a length`);
      }
      const hashes = entry['hashes'];
      if (!Object.values(hashes).every((hash) => typeof hash === 'string')) {
        throw malformed(file, `target ${name}: hashes must map algorithms to hex digests`);
      }
      const custom = entry['custom'] ?? {};
      if (!isObject(custom)) throw malformed(file, `target ${name}: custom must be an object`);
      entries.set(name, {
        hashes: Object.fromEntries(Object.entries(hashes).map(([key, hash]) => [key, (hash as string).toLowerCase()])),
        length: entry['length'],
        custom,
      });
    }
    return entries;
  }
}
