import './models-patch.js';
import { promises as fs, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
// Not re-exported from the package index: the pure half of tuf-js (bytes in, verified metadata out).
import { TrustedMetadataStore } from 'tuf-js/dist/store.js';
import { FerryError, describeCause } from '../errors.js';
import { readSmallFileSync, writeFileAtomic } from '../util/atomic-file.js';
import { BUNDLE_TARGETS_FILE, verifyBundleTargets, type BundleTargets, type BundleType } from './bundle-targets.js';
import { classifyTufError } from './classify-error.js';
import { formatExpires, parseExpires } from './expires.js';
import { TRUSTED_FILES, walkBundleMetadata, type TrustedFile } from './metadata-walk.js';
import { readStickMetadataFiles } from './stick-files.js';
import { targetFromMetadata, type Target } from './target.js';
import { asEffectiveTime, assertNotExpired, type EffectiveTime } from './time-floor.js';

/** Every metadata file is read with a cap before it is parsed. */
export const METADATA_MAX_BYTES = 4 * 1024 * 1024;

export interface VerifiedMetadata {
  readonly rootVersion: number;
  readonly bundle: BundleTargets;
  /** The targets named by the bundle, in bundle order, as verified by tuf-js. */
  readonly targets: readonly Target[];
  /** Names the bundle lists that targets.json lacks, or that are not OSTree targets, with why. */
  readonly unusable: readonly string[];
  /** A scratch copy of the trusted metadata after the walk; promote() makes it the device's trusted set. */
  readonly scratchDir: string;
}

/**
 * Checks what tuf-js cannot: each file parses, and each expiry is in the only format TUF allows. @tufjs/models takes
 * "expires": "not-a-date" as never expiring, so this runs before tuf-js sees a byte. targets.json, the one file that
 * grows with the factory (10,000 targets are megabytes), is parsed once, by tuf-js; its expiry is checked as soon as
 * tuf-js has read it (checkExpiry), before anything is made of it.
 */
function precheckBundleFiles(files: ReadonlyMap<string, Uint8Array>): void {
  for (const [name, bytes] of files) {
    if (/^(\d+\.)?targets\.json$/.test(name)) continue;
    let json: unknown;
    try {
      json = JSON.parse(Buffer.from(bytes).toString('utf8'));
    } catch (error) {
      throw new FerryError('METADATA_MALFORMED', `tuf/${name}: ${describeCause(error)}`, { cause: error });
    }
    checkExpiresFormat(name, (json as { signed?: { expires?: unknown } } | null)?.signed?.expires);
  }
}

function checkExpiresFormat(name: string, expires: unknown): Date {
  const date = parseExpires(expires);
  if (date === undefined) {
    throw new FerryError(
      'METADATA_MALFORMED',
      `tuf/${name}: expires ${JSON.stringify(expires)} is not YYYY-MM-DDTHH:MM:SSZ`,
    );
  }
  return date;
}

/**
 * tuf-js checks expiry against the real clock only, so a device whose clock reads 1970 would take expired metadata.
 * This checks what tuf-js accepted (each role as it now stands) against the effective time.
 */
function checkExpiry(store: TrustedMetadataStore, time: EffectiveTime): void {
  const roles = {
    'root.json': store.root,
    'timestamp.json': store.timestamp,
    'snapshot.json': store.snapshot,
    'targets.json': store.targets,
  };
  for (const [name, role] of Object.entries(roles)) {
    assertNotExpired(`tuf/${name}`, checkExpiresFormat(name, role?.signed.expires), time);
  }
}

/** The device's trusted files; root.json must be there, the others are there once a stick was taken. */
function readTrustedFiles(trustedDir: string): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  // The trusted targets.json is not read: the walk checks the stick's own (see walkBundleMetadata).
  for (const name of TRUSTED_FILES.filter((file) => file !== 'targets.json')) {
    try {
      files.set(name, readSmallFileSync(path.join(trustedDir, name), METADATA_MAX_BYTES));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || name === 'root.json') {
        throw new FerryError(
          'DEVICE_STATE_UNREADABLE',
          `trusted metadata: cannot read ${name}: ${describeCause(error)}`,
          {
            cause: error,
          },
        );
      }
    }
  }
  return files;
}

/**
 * Verifies a bundle's metadata from the device's trusted set: walks the root chain, then timestamp, snapshot and
 * targets with tuf-js, then bundle-targets.json with the newest root. Nothing is written to the device's trusted
 * set: what was accepted goes to a scratch directory, which only promote() makes the device's.
 * `now` is the time expiry is checked against; a device passes its effective time (clock and time floor).
 */
export async function verifyBundleMetadata(options: {
  trustedDir: string;
  bundleTufDir: string;
  /** The stick's tuf/ files, when the caller has read them already (readStickMetadataFiles). */
  bundleFiles?: ReadonlyMap<string, Uint8Array>;
  now?: Date | EffectiveTime;
  /** `count`: a production bundle still missing offline countersignatures verifies, and says how many it lacks. */
  offlineSignatures?: 'require' | 'count';
  /** The bundle type the device takes (see verifyBundleTargets). */
  expectedType?: BundleType;
}): Promise<VerifiedMetadata> {
  const now = asEffectiveTime(options.now ?? new Date());
  const files = options.bundleFiles ?? (await readStickMetadataFiles(options.bundleTufDir));
  precheckBundleFiles(files);
  const trusted = readTrustedFiles(options.trustedDir);

  let store: TrustedMetadataStore;
  // The store reads the real clock once, when it is made: this is the time its own expiry checks use.
  const tufClock = new Date();
  try {
    store = new TrustedMetadataStore(Buffer.from(trusted.get('root.json')!));
  } catch (error) {
    throw new FerryError('DEVICE_STATE_UNREADABLE', `the trusted root.json is not valid: ${describeCause(error)}`, {
      cause: error,
    });
  }
  let accepted: ReadonlyMap<TrustedFile, Uint8Array>;
  try {
    accepted = walkBundleMetadata(store, trusted, files, METADATA_MAX_BYTES).accepted;
  } catch (error) {
    const refused = classifyTufError(error);
    if (refused.outcome !== 'METADATA_EXPIRED') throw refused;
    throw new FerryError(
      'METADATA_EXPIRED',
      `${refused.message} (time used: the device clock ${formatExpires(tufClock)})`,
      {
        cause: error,
      },
    );
  }
  checkExpiry(store, now);

  const root = store.root;
  const bundleBytes = files.get(BUNDLE_TARGETS_FILE);
  if (bundleBytes === undefined) {
    throw new FerryError('METADATA_NOT_FOUND', `tuf/${BUNDLE_TARGETS_FILE} is missing from the bundle`);
  }
  // Parsed by the precheck already, which refuses a file that is not JSON.
  const bundleJson: unknown = JSON.parse(Buffer.from(bundleBytes).toString('utf8'));
  const bundle = verifyBundleTargets(bundleJson, root.signed, now, {
    offlineSignatures: options.offlineSignatures ?? 'require',
    expectedType: options.expectedType,
  });

  const targets: Target[] = [];
  const unusable: string[] = [];
  const listed = store.targets!.signed.targets;
  for (const name of bundle.targets) {
    const info = Object.hasOwn(listed, name) ? listed[name] : undefined;
    if (info === undefined) {
      unusable.push(`${name}: not in targets.json`);
      continue;
    }
    const target = targetFromMetadata(name, info.hashes, info.custom);
    if ('invalid' in target) unusable.push(target.invalid);
    else targets.push(target);
  }
  // Written without the event loop, as the files were read (readSmallFileSync): four small files.
  const scratchDir = mkdtempSync(path.join(os.tmpdir(), 'ferry-tuf-'));
  try {
    for (const [name, bytes] of accepted) writeFileSync(path.join(scratchDir, name), bytes);
  } catch (error) {
    await fs.rm(scratchDir, { recursive: true, force: true });
    throw error;
  }
  return { rootVersion: root.signed.version, bundle, targets, unusable, scratchDir };
}

/** Makes the verified metadata the device's trusted set, one file at a time, each replaced atomically. */
export async function promoteTrustedMetadata(verified: VerifiedMetadata, trustedDir: string): Promise<void> {
  await fs.mkdir(trustedDir, { recursive: true });
  for (const name of TRUSTED_FILES) {
    const source = path.join(verified.scratchDir, name);
    let data: Buffer;
    try {
      data = await fs.readFile(source);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw error;
    }
    await writeFileAtomic(path.join(trustedDir, name), data);
  }
}

export async function discardScratch(verified: VerifiedMetadata): Promise<void> {
  await fs.rm(verified.scratchDir, { recursive: true, force: true });
}
