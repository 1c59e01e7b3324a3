import { canonicalize } from '@tufjs/canonical-json';
import type { Root } from '@tufjs/models';
import { FerryError } from '../errors.js';
import { parseExpires } from './expires.js';
import type { SigningKey } from './keys.js';
import { asEffectiveTime, assertNotExpired, type EffectiveTime } from './time-floor.js';
import { offlineSignatures, offlineTargetsPolicy } from './offline-targets.js';
import { validSignatureKeyIds } from './signatures.js';

/** `bundle-targets.json`: which targets a stick carries, signed by the targets role (reference §1). */
export type BundleType = 'ci' | 'prod';

export interface BundleTargetsSigned {
  _type: 'bundle';
  expires: string;
  version: number;
  'x-ferry-bundle': {
    type: BundleType;
    tag: string;
    targets: string[];
    /** Every tag the bundle is for, when it carries targets of more than one; `tag` is the first of them. */
    tags?: string[];
    /** A delta bundle: it holds only what its targets add to this base target, which the device must have. */
    base?: { target: string; commit: string };
    /** When the bundle was signed (YYYY-MM-DDTHH:MM:SSZ); a device raises its time floor to it. Older bundles lack it. */
    signedAt?: string;
    /** An encrypted bundle (export --encrypt-to): the files that hold its key envelope and its encrypted content. */
    encrypted?: EncryptedParts;
    /** The rootfs carried as one OSTree static delta file (export --rootfs static-delta) instead of ostree_repo/. */
    rootfs?: StaticDeltaRootfs;
  };
}

/** The length and SHA-256 of one file of an encrypted bundle. */
export interface SignedFileDigest {
  readonly length: number;
  readonly sha256: string;
}

/**
 * What the signature of an encrypted bundle covers besides its targets: the key envelope and the ciphertext, so
 * that a device refuses a changed stick before it decrypts a byte (src/bundle/format/encrypted-bundle.ts).
 */
export interface EncryptedParts {
  readonly envelope: SignedFileDigest;
  readonly payload: SignedFileDigest;
}

/** How a bundle carries its rootfs as one static delta file: where it is, its length and SHA-256, and its base. */
export interface StaticDeltaRootfs {
  readonly form: 'static-delta';
  /** `rootfs/<commit>.delta`, relative to the bundle's root. */
  readonly file: string;
  readonly length: number;
  readonly sha256: string;
  /** The commit the delta starts from (a delta bundle's base); absent for a delta from nothing. */
  readonly from?: string | undefined;
}

export interface BundleTargets {
  readonly type: BundleType;
  readonly tag: string;
  /** Every tag the bundle is for (at least `tag`). */
  readonly tags: readonly string[];
  /** For a production bundle whose root names offline targets keys: how many more of their signatures it needs. */
  readonly offlineSignaturesMissing: number;
  /** Set for a delta bundle: the target whose content the device must already hold. */
  readonly base?: { readonly target: string; readonly commit: string } | undefined;
  readonly targets: readonly string[];
  readonly expires: Date;
  readonly version: number;
  /** The signed signing time; undefined for bundles made before it existed. */
  readonly signedAt?: Date | undefined;
  /** Set for an encrypted bundle: the digests of its key envelope and its ciphertext. */
  readonly encrypted?: EncryptedParts | undefined;
  /** Set when the rootfs is one static delta file rather than ostree_repo/. */
  readonly rootfs?: StaticDeltaRootfs | undefined;
}

export const BUNDLE_TARGETS_FILE = 'bundle-targets.json';

export function signBundleTargets(signed: BundleTargetsSigned, keys: readonly SigningKey[]): object {
  const bytes = Buffer.from(canonicalize(signed));
  return { signed, signatures: keys.map((key) => ({ keyid: key.keyId, sig: key.signHex(bytes) })) };
}

/** A bundle of the other type (ci on a production device, prod on any other) is for other devices. */
export function wrongBundleType(type: BundleType, wanted: BundleType): FerryError {
  return new FerryError(
    'BUNDLE_METADATA_INVALID',
    `${BUNDLE_TARGETS_FILE}: this is a "${type}" bundle; this ${wanted === 'prod' ? 'production' : 'non-production'} device takes only "${wanted}" bundles`,
  );
}

function malformed(message: string): FerryError {
  return new FerryError('METADATA_MALFORMED', `${BUNDLE_TARGETS_FILE}: ${message}`);
}

/**
 * Checks bundle-targets.json against the targets role of the newest verified root. Pure: bytes in, a verified
 * object out. Distinct signatures from distinct role keys must reach the threshold; a key id that appears twice
 * counts once.
 */
export function verifyBundleTargets(
  json: unknown,
  root: Root,
  now: Date | EffectiveTime,
  options: {
    readonly offlineSignatures?: 'require' | 'count';
    /** The type the device takes: a bundle of the other type is refused as such before its countersignatures count. */
    readonly expectedType?: BundleType | undefined;
  } = {},
): BundleTargets {
  if (typeof json !== 'object' || json === null) throw malformed('not a JSON object');
  const { signed, signatures } = json as { signed?: unknown; signatures?: unknown };
  if (typeof signed !== 'object' || signed === null || !Array.isArray(signatures)) {
    throw malformed('needs "signed" and "signatures"');
  }
  const body = signed as Partial<BundleTargetsSigned>;
  if (body._type !== 'bundle') throw malformed(`_type is ${JSON.stringify(body._type)}, expected "bundle"`);
  const expires = parseExpires(body.expires);
  if (expires === undefined) throw malformed(`expires ${JSON.stringify(body.expires)} is not YYYY-MM-DDTHH:MM:SSZ`);
  if (!Number.isSafeInteger(body.version) || (body.version as number) < 1)
    throw malformed('version must be a positive integer');
  const info = body['x-ferry-bundle'];
  if (
    typeof info !== 'object' ||
    info === null ||
    (info.type !== 'ci' && info.type !== 'prod') ||
    typeof info.tag !== 'string' ||
    !Array.isArray(info.targets) ||
    !info.targets.every((name) => typeof name === 'string')
  ) {
    throw malformed('x-ferry-bundle needs type ("ci" or "prod"), tag and a list of target names');
  }
  if (info.tags !== undefined && (!Array.isArray(info.tags) || !info.tags.every((tag) => typeof tag === 'string')))
    throw malformed('x-ferry-bundle.tags must be a list of tags');
  const tags = [...new Set([info.tag, ...(info.tags ?? [])])];
  const base = info.base as { target?: unknown; commit?: unknown } | undefined;
  if (
    base !== undefined &&
    (typeof base !== 'object' ||
      base === null ||
      typeof base.target !== 'string' ||
      typeof base.commit !== 'string' ||
      !/^[0-9a-f]{64}$/.test(base.commit))
  )
    throw malformed('x-ferry-bundle.base needs a target name and its 64-hex commit');
  // Absent in bundles exported before it existed: those still install, and leave the time floor where it was.
  const signedAt = info.signedAt === undefined ? undefined : parseExpires(info.signedAt);
  if (info.signedAt !== undefined && signedAt === undefined) {
    throw malformed(`x-ferry-bundle.signedAt ${JSON.stringify(info.signedAt)} is not YYYY-MM-DDTHH:MM:SSZ`);
  }

  const encrypted = info.encrypted === undefined ? undefined : parseEncryptedParts(info.encrypted);
  const rootfs = info.rootfs === undefined ? undefined : parseStaticDeltaRootfs(info.rootfs, info.targets, base);

  const role = root.roles['targets'];
  if (role === undefined) throw new FerryError('SECURITY_ERROR', 'root.json defines no targets role');
  const valid = validSignatureKeyIds(root, 'targets', signed, signatures as unknown[]);
  if (valid.size < role.threshold) {
    throw new FerryError(
      'SECURITY_ERROR',
      `${BUNDLE_TARGETS_FILE}: ${valid.size} valid signature(s) from targets keys, threshold is ${role.threshold}`,
    );
  }
  // A bundle for other devices is that, however it is countersigned: a prod bundle on a ci device is the wrong stick.
  if (options.expectedType !== undefined && info.type !== options.expectedType)
    throw wrongBundleType(info.type, options.expectedType);
  // A production bundle also needs its offline countersignatures, when the root names offline keys.
  const policy = info.type === 'prod' ? offlineTargetsPolicy(root) : null;
  const offlineValid = policy === null ? 0 : offlineSignatures(root, policy, signed, signatures as unknown[]);
  const offlineSignaturesMissing = policy === null ? 0 : Math.max(0, policy.threshold - offlineValid);
  if (offlineSignaturesMissing > 0 && options.offlineSignatures !== 'count') {
    throw new FerryError(
      'SECURITY_ERROR',
      `${BUNDLE_TARGETS_FILE}: a production bundle needs ${policy!.threshold} signature(s) of offline targets keys, it has ${offlineValid} (add them with ferry bundle sign)`,
    );
  }
  assertNotExpired(BUNDLE_TARGETS_FILE, expires, asEffectiveTime(now));
  // A signing time after the expiry is no export's doing; taken as the floor it would outlive the bundle itself.
  if (signedAt !== undefined && signedAt.getTime() > expires.getTime()) {
    throw malformed(`x-ferry-bundle.signedAt ${info.signedAt} is later than expires ${body.expires}`);
  }
  return {
    type: info.type,
    tag: info.tag,
    tags,
    offlineSignaturesMissing,
    ...(base === undefined ? {} : { base: { target: base.target as string, commit: base.commit as string } }),
    targets: [...info.targets],
    expires,
    version: body.version as number,
    signedAt,
    ...(encrypted === undefined ? {} : { encrypted }),
    ...(rootfs === undefined ? {} : { rootfs }),
  };
}

function parseFileDigest(value: unknown, what: string): SignedFileDigest {
  return fileDigest(value, `x-ferry-bundle.encrypted.${what}`);
}

function fileDigest(value: unknown, what: string): SignedFileDigest {
  const digest = value as { length?: unknown; sha256?: unknown } | null;
  if (
    typeof digest !== 'object' ||
    digest === null ||
    !Number.isSafeInteger(digest.length) ||
    (digest.length as number) < 0 ||
    typeof digest.sha256 !== 'string' ||
    !/^[0-9a-f]{64}$/.test(digest.sha256)
  )
    throw malformed(`${what} needs a length and a 64-hex sha256`);
  return { length: digest.length as number, sha256: digest.sha256 };
}

function parseEncryptedParts(value: unknown): EncryptedParts {
  if (typeof value !== 'object' || value === null) throw malformed('x-ferry-bundle.encrypted must be an object');
  const parts = value as { envelope?: unknown; payload?: unknown };
  return { envelope: parseFileDigest(parts.envelope, 'envelope'), payload: parseFileDigest(parts.payload, 'payload') };
}

/**
 * The static delta entry: its file is named after the one target's commit (a static-delta bundle carries one target),
 * and a delta bundle's starts from its signed base. Anything else is no export's doing.
 */
function parseStaticDeltaRootfs(
  value: unknown,
  targets: readonly string[],
  base: { commit?: unknown } | undefined,
): StaticDeltaRootfs {
  if (typeof value !== 'object' || value === null) throw malformed('x-ferry-bundle.rootfs must be an object');
  const entry = value as { form?: unknown; file?: unknown; from?: unknown };
  if (entry.form !== 'static-delta')
    throw malformed(`x-ferry-bundle.rootfs.form ${JSON.stringify(entry.form)} is not "static-delta"`);
  if (typeof entry.file !== 'string' || !/^rootfs\/[0-9a-f]{64}\.delta$/.test(entry.file))
    throw malformed('x-ferry-bundle.rootfs.file must be rootfs/<64-hex commit>.delta');
  if (targets.length !== 1) throw malformed('a bundle whose rootfs is a static delta carries exactly one target');
  if (entry.from !== undefined && (typeof entry.from !== 'string' || !/^[0-9a-f]{64}$/.test(entry.from)))
    throw malformed('x-ferry-bundle.rootfs.from must be a 64-hex commit');
  if ((entry.from ?? undefined) !== (base?.commit ?? undefined))
    throw malformed('x-ferry-bundle.rootfs.from must be the commit of x-ferry-bundle.base');
  const digest = fileDigest(value, 'x-ferry-bundle.rootfs');
  return {
    form: 'static-delta',
    file: entry.file,
    ...digest,
    ...(entry.from === undefined ? {} : { from: entry.from as string }),
  };
}
