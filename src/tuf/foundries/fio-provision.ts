import { FerryError, describeCause } from '../../errors.js';
import { asEffectiveTime } from '../time-floor.js';
import { fioCanonicalJson } from './fio-canonical.js';
import { FoundriesMetadataStore } from './fio-metadata-store.js';

/** What provisioning a device with Foundries roots does. */
export type FoundriesRootProvision =
  | { readonly action: 'already-trusted'; readonly version: number }
  | {
      readonly action: 'trust';
      /** The bytes of the newest root given: what the device trusts from now on. */
      readonly root: Uint8Array;
      readonly version: number;
      /** The version trusted before, if one was. */
      readonly from: number | undefined;
    };

interface OfferedRoot {
  readonly bytes: Uint8Array;
  readonly version: number;
  readonly name: string;
}

function invalid(name: string, why: string): FerryError {
  return new FerryError('TRUSTED_ROOT_INVALID', `${name}: ${why}`);
}

function parseOffered(name: string, bytes: Uint8Array): OfferedRoot {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (error) {
    throw invalid(name, describeCause(error));
  }
  const signed = (json as { signed?: { _type?: unknown; version?: unknown } } | null)?.signed;
  if (signed?._type === 'root') {
    throw invalid(
      name,
      'this is a root of the ferry format; --trusted-root takes a root of the Foundries (fioctl) format (a ferry device trusts the root its factory image carries)',
    );
  }
  if (signed?._type !== 'Root') throw invalid(name, 'not a root metadata file of the Foundries format (_type "Root")');
  if (!Number.isSafeInteger(signed.version) || (signed.version as number) < 1) {
    throw invalid(name, 'version must be a positive integer');
  }
  return { bytes, version: signed.version as number, name };
}

const sameDocument = (a: Uint8Array, b: Uint8Array): boolean => {
  try {
    return (
      fioCanonicalJson(JSON.parse(Buffer.from(a).toString('utf8'))) ===
      fioCanonicalJson(JSON.parse(Buffer.from(b).toString('utf8')))
    );
  } catch {
    return false;
  }
};

/**
 * Decides what `device provision --trusted-root` records, as an LmP image carries the root it trusts: the first root
 * of the format is taken as given (it must carry its own threshold of signatures); once one is trusted, a new root is
 * taken only along the chain from it, each version signed by the threshold of the root keys of the version before
 * and of its own, exactly as an install walks the roots of a stick. Roots given that the device already has are
 * skipped when they are the ones it trusts. Pure: the caller reads the files and stores the result.
 */
export function planFoundriesRootProvision(
  trusted: Uint8Array | undefined,
  given: readonly { readonly name: string; readonly bytes: Uint8Array }[],
): FoundriesRootProvision {
  if (given.length === 0) throw new FerryError('USAGE', '--trusted-root needs at least one root file');
  const offered = given.map((file) => parseOffered(file.name, file.bytes)).sort((a, b) => a.version - b.version);
  // The store checks signatures only; expiry is checked by every install, against the device's time.
  const time = asEffectiveTime(new Date(0));
  const storeFrom = (root: Uint8Array, name: string, code: 'TRUSTED_ROOT_INVALID' | 'DEVICE_STATE_UNREADABLE') => {
    try {
      return new FoundriesMetadataStore({ root }, time);
    } catch (error) {
      throw new FerryError(
        code,
        code === 'TRUSTED_ROOT_INVALID' ? `${name}: ${describeCause(error)}` : describeCause(error),
        {
          cause: error,
        },
      );
    }
  };

  let store: FoundriesMetadataStore;
  let from: number | undefined;
  let chain: OfferedRoot[];
  if (trusted === undefined) {
    const [first, ...rest] = offered;
    store = storeFrom(first!.bytes, first!.name, 'TRUSTED_ROOT_INVALID');
    chain = rest;
  } else {
    store = storeFrom(trusted, 'the trusted Foundries root', 'DEVICE_STATE_UNREADABLE');
    from = store.rootVersion;
    for (const root of offered.filter((root) => root.version <= from!)) {
      if (root.version === from && sameDocument(root.bytes, trusted)) continue;
      throw new FerryError(
        'TRUSTED_ROOT_NOT_CHAINED',
        `${root.name}: root version ${root.version} is not the root this device trusts (version ${from}): a trusted root is replaced only along its chain`,
      );
    }
    chain = offered.filter((root) => root.version > from!);
    if (chain.length === 0) return { action: 'already-trusted', version: from };
  }

  let newest: OfferedRoot | undefined;
  for (const root of chain) {
    const expected = store.rootVersion + 1;
    if (root.version !== expected) {
      throw new FerryError(
        trusted === undefined ? 'TRUSTED_ROOT_INVALID' : 'TRUSTED_ROOT_NOT_CHAINED',
        `${root.name}: root version ${root.version} does not follow version ${store.rootVersion}: give every version from ${expected} on`,
      );
    }
    try {
      store.updateRoot(root.bytes);
    } catch (error) {
      throw new FerryError(
        trusted === undefined ? 'TRUSTED_ROOT_INVALID' : 'TRUSTED_ROOT_NOT_CHAINED',
        `${root.name}: does not chain from root version ${expected - 1}: ${describeCause(error)}`,
        { cause: error },
      );
    }
    newest = root;
  }
  const root = newest ?? offered[0]!;
  return { action: 'trust', root: root.bytes, version: store.rootVersion, from };
}
