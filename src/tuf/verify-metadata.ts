import './models-patch.js';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Metadata, MetadataKind, type Root } from '@tufjs/models';
import { Updater } from 'tuf-js';
import { BadVersionError } from 'tuf-js/dist/error.js';
import { FerryError, describeCause } from '../errors.js';
import { readSmallFile, writeFileAtomic } from '../util/atomic-file.js';
import { BUNDLE_METADATA_URL, BundleFetcher } from './bundle-fetcher.js';
import { BUNDLE_TARGETS_FILE, verifyBundleTargets, type BundleTargets, type BundleType } from './bundle-targets.js';
import { classifyTufError } from './classify-error.js';
import { formatExpires, parseExpires } from './expires.js';
import { targetFromMetadata, type Target } from './target.js';
import { asEffectiveTime, assertNotExpired, type EffectiveTime } from './time-floor.js';

/** Every metadata file is read with a cap before it is parsed. */
export const METADATA_MAX_BYTES = 4 * 1024 * 1024;
export const TRUSTED_FILES = ['root.json', 'timestamp.json', 'snapshot.json', 'targets.json'] as const;

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
 * "expires": "not-a-date" as never expiring, so this runs before the Updater sees a byte.
 */
async function precheckBundleFiles(tufDir: string): Promise<void> {
  let names: string[];
  try {
    names = await fs.readdir(tufDir);
  } catch (error) {
    throw new FerryError('BUNDLE_UNREADABLE', `cannot read ${tufDir}: ${describeCause(error)}`, { cause: error });
  }
  for (const name of names.filter((entry) => entry.endsWith('.json')).sort()) {
    let json: unknown;
    try {
      json = JSON.parse((await readSmallFile(path.join(tufDir, name), METADATA_MAX_BYTES)).toString('utf8'));
    } catch (error) {
      throw new FerryError('METADATA_MALFORMED', `tuf/${name}: ${describeCause(error)}`, { cause: error });
    }
    const expires = (json as { signed?: { expires?: unknown } } | null)?.signed?.expires;
    if (parseExpires(expires) === undefined) {
      throw new FerryError(
        'METADATA_MALFORMED',
        `tuf/${name}: expires ${JSON.stringify(expires)} is not YYYY-MM-DDTHH:MM:SSZ`,
      );
    }
  }
}

async function readJson(file: string): Promise<unknown> {
  return JSON.parse((await readSmallFile(file, METADATA_MAX_BYTES)).toString('utf8'));
}

/**
 * tuf-js checks expiry against the real clock only, so a device whose clock reads 1970 would take expired metadata.
 * This checks what tuf-js accepted (each role as it now stands in the scratch copy) against the effective time.
 */
async function checkExpiry(scratchDir: string, time: EffectiveTime): Promise<void> {
  for (const name of TRUSTED_FILES) {
    const expires = ((await readJson(path.join(scratchDir, name))) as { signed?: { expires?: unknown } } | null)?.signed
      ?.expires;
    const date = parseExpires(expires);
    if (date === undefined) {
      throw new FerryError(
        'METADATA_MALFORMED',
        `tuf/${name}: expires ${JSON.stringify(expires)} is not YYYY-MM-DDTHH:MM:SSZ`,
      );
    }
    assertNotExpired(`tuf/${name}`, date, time);
  }
}

async function timestampVersionOf(file: string): Promise<number | undefined> {
  try {
    const version = ((await readJson(file)) as { signed?: { version?: unknown } } | null)?.signed?.version;
    return Number.isSafeInteger(version) ? (version as number) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Every export raises the metadata versions, so a stick exported before the newest one a device has taken carries
 * an older timestamp.json. tuf-js refuses it (rollback protection), as it must, but only after the old timestamp's
 * signatures verified against the trusted root: this is an honest older stick (or a replayed one, which is the same
 * thing to the device), not a forgery, and it gets its own answer. A timestamp whose signatures do not verify fails
 * earlier, and stays a security error.
 */
async function olderThanTrusted(
  error: unknown,
  trustedDir: string,
  bundleTufDir: string,
): Promise<FerryError | undefined> {
  if (!(error instanceof BadVersionError) || !/timestamp/i.test(error.message)) return undefined;
  const trusted = await timestampVersionOf(path.join(trustedDir, 'timestamp.json'));
  const offered = await timestampVersionOf(path.join(bundleTufDir, 'timestamp.json'));
  if (trusted === undefined || offered === undefined || offered >= trusted) return undefined;
  return new FerryError(
    'METADATA_OLDER_THAN_TRUSTED',
    `tuf/timestamp.json: this stick is older than the metadata this device trusts (timestamp ${offered} < ${trusted}): export a fresh stick`,
    { cause: error },
  );
}

/**
 * Verifies a bundle's metadata from the device's trusted set: walks the root chain, then timestamp, snapshot and
 * targets with tuf-js, then bundle-targets.json with the newest root. tuf-js writes what it accepts straight into
 * its metadata directory, so it works on a scratch copy: the device's trusted set changes only through promote().
 * `now` is the time expiry is checked against; a device passes its effective time (clock and time floor).
 */
export async function verifyBundleMetadata(options: {
  trustedDir: string;
  bundleTufDir: string;
  now?: Date | EffectiveTime;
  /** `count`: a production bundle still missing offline countersignatures verifies, and says how many it lacks. */
  offlineSignatures?: 'require' | 'count';
  /** The bundle type the device takes (see verifyBundleTargets). */
  expectedType?: BundleType;
}): Promise<VerifiedMetadata> {
  const now = asEffectiveTime(options.now ?? new Date());
  await precheckBundleFiles(options.bundleTufDir);

  const scratchDir = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-tuf-'));
  try {
    for (const name of TRUSTED_FILES) {
      try {
        await fs.copyFile(path.join(options.trustedDir, name), path.join(scratchDir, name));
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
    let updater: Updater;
    // The Updater reads the real clock once, when it is made: this is the time its own expiry checks use.
    const tufClock = new Date();
    try {
      updater = new Updater({
        metadataDir: scratchDir,
        metadataBaseUrl: BUNDLE_METADATA_URL,
        fetcher: new BundleFetcher(options.bundleTufDir),
        config: {
          rootMaxLength: METADATA_MAX_BYTES,
          timestampMaxLength: METADATA_MAX_BYTES,
          snapshotMaxLength: METADATA_MAX_BYTES,
          targetsMaxLength: METADATA_MAX_BYTES,
        },
      });
    } catch (error) {
      throw new FerryError('DEVICE_STATE_UNREADABLE', `the trusted root.json is not valid: ${describeCause(error)}`, {
        cause: error,
      });
    }
    try {
      await updater.refresh();
    } catch (error) {
      const older = await olderThanTrusted(error, options.trustedDir, options.bundleTufDir);
      if (older !== undefined) throw older;
      const refused = classifyTufError(error);
      if (refused.outcome !== 'METADATA_EXPIRED') throw refused;
      throw new FerryError(
        'METADATA_EXPIRED',
        `${refused.message} (time used: the device clock ${formatExpires(tufClock)})`,
        { cause: error },
      );
    }
    await checkExpiry(scratchDir, now);

    const root = Metadata.fromJSON(
      MetadataKind.Root,
      (await readJson(path.join(scratchDir, 'root.json'))) as never,
    ) as Metadata<Root>;
    let bundleJson: unknown;
    try {
      bundleJson = await readJson(path.join(options.bundleTufDir, BUNDLE_TARGETS_FILE));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new FerryError('METADATA_NOT_FOUND', `tuf/${BUNDLE_TARGETS_FILE} is missing from the bundle`);
      }
      throw new FerryError('METADATA_MALFORMED', `tuf/${BUNDLE_TARGETS_FILE}: ${describeCause(error)}`, {
        cause: error,
      });
    }
    const bundle = verifyBundleTargets(bundleJson, root.signed, now, {
      offlineSignatures: options.offlineSignatures ?? 'require',
      expectedType: options.expectedType,
    });

    const targets: Target[] = [];
    const unusable: string[] = [];
    for (const name of bundle.targets) {
      const info = await updater.getTargetInfo(name);
      if (info === undefined) {
        unusable.push(`${name}: not in targets.json`);
        continue;
      }
      const target = targetFromMetadata(name, info.hashes, info.custom);
      if ('invalid' in target) unusable.push(target.invalid);
      else targets.push(target);
    }
    return { rootVersion: root.signed.version, bundle, targets, unusable, scratchDir };
  } catch (error) {
    await fs.rm(scratchDir, { recursive: true, force: true });
    throw error;
  }
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
