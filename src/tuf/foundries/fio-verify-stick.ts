import { FerryError } from '../../errors.js';
import { BUNDLE_TARGETS_FILE, type BundleTargets, type BundleType } from '../bundle-targets.js';
import { targetFromMetadata, type Target } from '../target.js';
import { asEffectiveTime, type EffectiveTime } from '../time-floor.js';
import { FoundriesMetadataStore, type FoundriesTrustedState } from './fio-metadata-store.js';

/**
 * What a verified Foundries-format stick offers a device: the same facts verifyBundleMetadata gives for a ferry
 * stick (bundle, targets, unusable names, root version), and, instead of a scratch directory, the trusted state the
 * device stores once the install goes ahead.
 */
export interface VerifiedFoundriesMetadata {
  readonly rootVersion: number;
  readonly bundle: BundleTargets;
  /** The targets named by the bundle, in bundle order, from the verified targets.json. */
  readonly targets: readonly Target[];
  /** Names the bundle lists that targets.json lacks, or that are not OSTree targets, with why. */
  readonly unusable: readonly string[];
  /** The newest root and the accepted versions: what the device keeps for this format after the install. */
  readonly trustedAfter: FoundriesTrustedState;
}

function required(files: ReadonlyMap<string, Uint8Array>, name: string): Uint8Array {
  const bytes = files.get(name);
  if (bytes === undefined) {
    throw new FerryError(
      'METADATA_NOT_FOUND',
      name === BUNDLE_TARGETS_FILE ? `tuf/${name} is missing from the bundle` : `tuf/${name}: missing`,
    );
  }
  return bytes;
}

/**
 * Verifies the `tuf/` files of a Foundries stick (by name: N.root.json, timestamp.json, snapshot.json,
 * targets.json, bundle-targets.json) from the device's trusted state. The root chain is walked from the trusted
 * version: the stick carries N.root.json from the first version a device may lack, and versions a device already
 * has are not read. Pure: the caller reads the files (each with a size cap) and stores `trustedAfter`.
 */
export function verifyFoundriesStick(options: {
  readonly trusted: FoundriesTrustedState;
  readonly files: ReadonlyMap<string, Uint8Array>;
  readonly now: Date | EffectiveTime;
  /** The bundle type the device takes: a bundle of the other type is refused as the wrong stick (15). */
  readonly expectedType?: BundleType | undefined;
  /** `count`: a production bundle short of its targets signatures verifies, and says how many it lacks. */
  readonly signatures?: 'require' | 'count' | undefined;
}): VerifiedFoundriesMetadata {
  const { files } = options;
  const store = new FoundriesMetadataStore(options.trusted, asEffectiveTime(options.now));
  for (;;) {
    const next = files.get(`${store.rootVersion + 1}.root.json`);
    if (next === undefined) break;
    store.updateRoot(next);
  }
  store.updateTimestamp(required(files, 'timestamp.json'));
  store.updateSnapshot(required(files, 'snapshot.json'));
  store.updateTargets(required(files, 'targets.json'));
  const bundle = store.verifyBundleTargets(required(files, BUNDLE_TARGETS_FILE), {
    expectedType: options.expectedType,
    signatures: options.signatures,
  });
  const targets: Target[] = [];
  const unusable: string[] = [];
  for (const name of bundle.targets) {
    const info = store.targetInfo(name);
    if (info === undefined) {
      unusable.push(`${name}: not in targets.json`);
      continue;
    }
    const target = targetFromMetadata(name, { ...info.hashes }, { ...info.custom });
    if ('invalid' in target) unusable.push(target.invalid);
    else targets.push(target);
  }
  return { rootVersion: store.rootVersion, bundle, targets, unusable, trustedAfter: store.trustedState() };
}
