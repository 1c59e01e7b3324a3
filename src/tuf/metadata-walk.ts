import { MetadataKind } from '@tufjs/models';
import {
  BadVersionError,
  DownloadHTTPError,
  DownloadLengthMismatchError,
  EqualVersionError,
} from 'tuf-js/dist/error.js';
// Not re-exported from the package index: the pure half of tuf-js, which takes bytes and keeps what it verified.
import { TrustedMetadataStore } from 'tuf-js/dist/store.js';
import { FerryError } from '../errors.js';
import { classifyTufError } from './classify-error.js';

/** The files a device keeps as its trusted metadata, each the newest it accepted. */
export const TRUSTED_FILES = ['root.json', 'timestamp.json', 'snapshot.json', 'targets.json'] as const;
export type TrustedFile = (typeof TRUSTED_FILES)[number];

/** How many root versions one stick may move a device through (tuf-js's Updater allows as many). */
const MAX_ROOT_ROTATIONS = 256;

export interface WalkedMetadata {
  /** What tuf-js verified: the newest root, timestamp, snapshot and targets. */
  readonly store: TrustedMetadataStore;
  /** The bytes of each file of `store`, as the device keeps them once it takes the stick. */
  readonly accepted: ReadonlyMap<TrustedFile, Uint8Array>;
}

/** The store takes Buffers; this views the same memory, where Buffer.from(buffer) would copy it. */
const asBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

function versionOf(bytes: Uint8Array | undefined): number | undefined {
  if (bytes === undefined) return undefined;
  try {
    const version = (JSON.parse(asBuffer(bytes).toString('utf8')) as { signed?: { version?: unknown } } | null)?.signed
      ?.version;
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
function olderThanTrusted(
  error: unknown,
  trusted: Uint8Array | undefined,
  offered: Uint8Array,
): FerryError | undefined {
  if (!(error instanceof BadVersionError) || !/timestamp/i.test(error.message)) return undefined;
  const [trustedVersion, offeredVersion] = [versionOf(trusted), versionOf(offered)];
  if (trustedVersion === undefined || offeredVersion === undefined || offeredVersion >= trustedVersion)
    return undefined;
  return new FerryError(
    'METADATA_OLDER_THAN_TRUSTED',
    `tuf/timestamp.json: this stick is older than the metadata this device trusts (timestamp ${offeredVersion} < ${trustedVersion}): export a fresh stick`,
    { cause: error },
  );
}

/**
 * Walks a stick's metadata from the device's trusted set in the TUF client workflow, as tuf-js's Updater does
 * (roots one version at a time, timestamp, snapshot, targets), with tuf-js's TrustedMetadataStore making every
 * check: signatures and thresholds, versions and rollback, hashes and lengths, expiry against the real clock. The
 * Updater itself is not used because it is also the I/O: it reads the device's trusted files from a directory and
 * writes each file it accepts into that same directory (so it had to work on a scratch copy of the trusted set),
 * and it fetches each file of the stick itself, after ferry's own checks had read it already. Here the bytes come
 * from memory (each file read once, by the caller) and the accepted ones go back to the caller, who makes them the
 * device's only once the install goes ahead.
 *
 * One difference from the Updater, on purpose: the device's trusted targets.json is never loaded. The Updater tries
 * it first as a cache of the stick's (with a full parse and signature check, which is most of the cost of a
 * factory's 10,000 targets) and uses it only when it is the very version the new snapshot names; the stick's own
 * targets.json, always checked here, passes the same checks. Delegated targets roles are not walked: ferry's
 * targets.json delegates nothing, and a target only a delegation names is one this device does not know.
 *
 * A refusal is a FerryError naming the file; `store` construction (the trusted root) is the caller's.
 */
export function walkBundleMetadata(
  store: TrustedMetadataStore,
  trusted: ReadonlyMap<string, Uint8Array>,
  bundle: ReadonlyMap<string, Uint8Array>,
  maxBytes: number,
): WalkedMetadata {
  const accepted = new Map<TrustedFile, Uint8Array>();
  for (const name of TRUSTED_FILES) {
    const bytes = trusted.get(name);
    if (bytes !== undefined && name !== 'targets.json') accepted.set(name, bytes);
  }
  /** A file of the stick; a missing one is a 404, which is what ends the root walk. */
  const fetch = (name: string, limit: number): Uint8Array => {
    const bytes = bundle.get(name);
    if (bytes === undefined) throw new DownloadHTTPError(`${name} not found in the bundle`, 404);
    if (bytes.byteLength > limit) {
      throw new DownloadLengthMismatchError(
        `${name} is ${bytes.byteLength} bytes, more than the ${limit} bytes allowed`,
      );
    }
    return bytes;
  };
  const step = (file: string, run: () => void): void => {
    try {
      run();
    } catch (error) {
      throw classifyTufError(error, file);
    }
  };

  // Client workflow 5.3: every newer root, one version at a time, until the stick has no next one.
  const first = store.root.signed.version + 1;
  for (let version = first; version < first + MAX_ROOT_ROTATIONS; version++) {
    const file = `${version}.root.json`;
    if (!bundle.has(file)) break;
    step(file, () => {
      const bytes = fetch(file, maxBytes);
      store.updateRoot(asBuffer(bytes));
      accepted.set('root.json', bytes);
    });
  }

  // 5.4: the trusted timestamp first (it is what a rollback is checked against), then the stick's.
  const trustedTimestamp = trusted.get('timestamp.json');
  if (trustedTimestamp !== undefined) {
    try {
      store.updateTimestamp(asBuffer(trustedTimestamp));
    } catch {
      // A trusted timestamp that no longer verifies (a rotated key) protects nothing: the stick's is checked alone.
    }
  }
  step('timestamp.json', () => {
    const bytes = fetch('timestamp.json', maxBytes);
    try {
      store.updateTimestamp(asBuffer(bytes));
      accepted.set('timestamp.json', bytes);
    } catch (error) {
      // The same version as the trusted one: the trusted one stays.
      if (error instanceof EqualVersionError) return;
      throw olderThanTrusted(error, trustedTimestamp, bytes) ?? error;
    }
  });

  // 5.5: the trusted snapshot, if it is still the one the timestamp names; else the stick's, which must not roll
  // back the versions the trusted one names.
  const trustedSnapshot = trusted.get('snapshot.json');
  let current = false;
  if (trustedSnapshot !== undefined) {
    try {
      store.updateSnapshot(asBuffer(trustedSnapshot), true);
      current = true;
    } catch {
      // Older than the timestamp names: kept by the store for the rollback check of the stick's.
    }
  }
  if (!current) {
    const meta = store.timestamp!.signed.snapshotMeta;
    const file = store.root.signed.consistentSnapshot ? `${meta.version}.snapshot.json` : 'snapshot.json';
    step(file, () => {
      const bytes = fetch(file, meta.length || maxBytes);
      store.updateSnapshot(asBuffer(bytes));
      accepted.set('snapshot.json', bytes);
    });
  }

  // 5.6: the stick's targets.json, checked against the snapshot's hashes and version, then its signatures.
  const meta = store.snapshot!.signed.meta['targets.json'];
  const file =
    meta !== undefined && store.root.signed.consistentSnapshot ? `${meta.version}.targets.json` : 'targets.json';
  step(file, () => {
    const bytes = fetch(file, meta?.length || maxBytes);
    store.updateDelegatedTargets(asBuffer(bytes), MetadataKind.Targets, MetadataKind.Root);
    accepted.set('targets.json', bytes);
  });
  return { store, accepted };
}
