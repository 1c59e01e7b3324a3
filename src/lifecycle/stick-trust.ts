import type { DevicePaths } from '../device/paths.js';
import { loadFoundriesTrust, saveFoundriesTrust } from '../device/foundries-trust-file.js';
import { FerryError } from '../errors.js';
import type { BundleType, StaticDeltaRootfs } from '../tuf/bundle-targets.js';
import { verifyFoundriesStick, type VerifiedFoundriesMetadata } from '../tuf/foundries/fio-verify-stick.js';
import { detectStickFormat, type StickFormat } from '../tuf/foundries/stick-format.js';
import { readStickMetadataFiles } from '../tuf/stick-files.js';
import type { EffectiveTime } from '../tuf/time-floor.js';
import {
  discardScratch,
  promoteTrustedMetadata,
  verifyBundleMetadata,
  type VerifiedMetadata,
} from '../tuf/verify-metadata.js';

/**
 * A stick's metadata verified from the device's trusted state for the stick's own format. Both formats give the same
 * facts to the planner (bundle, targets, unusable names, root version); each keeps its own trusted state, so that a
 * stick of one format never moves the trust of the other.
 */
export type VerifiedStick =
  | (VerifiedMetadata & { readonly format: 'ferry' })
  | (VerifiedFoundriesMetadata & {
      readonly format: 'foundries';
      /** The stick's targets.json, kept with the trusted state once the install goes ahead. */
      readonly targetsBytes: Uint8Array;
    });

/**
 * Tells the stick's format from its `tuf/` files and verifies it. A stick whose format cannot be told goes to the
 * ferry verifier, which refuses it with the code it always gave; only a stick that is plainly of the Foundries
 * format is read by that format's verifier. A Foundries stick on a device that trusts no Foundries root is refused:
 * the device learns that root when it is provisioned, never from the stick it is about to verify.
 */
export async function verifyStick(options: {
  readonly paths: DevicePaths;
  readonly tufDir: string;
  readonly time: EffectiveTime;
  readonly expectedType: BundleType;
  /** Lines for the status record's log (a trusted state file that was moved aside). */
  readonly log: (line: string) => void;
}): Promise<VerifiedStick> {
  const files = await readStickMetadataFiles(options.tufDir);
  let format: StickFormat = 'ferry';
  try {
    format = detectStickFormat(files);
  } catch {
    // Neither format, or both: the ferry verifier refuses it, with the code it has always given such a stick.
  }
  if (format === 'ferry') {
    const verified = await verifyBundleMetadata({
      trustedDir: options.paths.trustedMetadataDir,
      bundleTufDir: options.tufDir,
      bundleFiles: files,
      now: options.time,
      expectedType: options.expectedType,
    });
    return { ...verified, format };
  }
  const trust = await loadFoundriesTrust(options.paths.foundriesTrustDir);
  for (const line of trust.recovered) options.log(line);
  if (trust.state === undefined) {
    throw new FerryError(
      'FOUNDRIES_ROOT_NOT_PROVISIONED',
      "this is a Foundries (fioctl) stick and this device trusts no Foundries root: provision the factory's root with `ferry device provision --trusted-root <N.root.json>`, then install again",
    );
  }
  const verified = verifyFoundriesStick({
    trusted: trust.state,
    files,
    now: options.time,
    expectedType: options.expectedType,
  });
  return { ...verified, format, targetsBytes: files.get('targets.json')! };
}

/** Makes the verified metadata the device's trusted state for its format; called only once the install goes ahead. */
export async function promoteStickTrust(verified: VerifiedStick, paths: DevicePaths): Promise<void> {
  if (verified.format === 'ferry') await promoteTrustedMetadata(verified, paths.trustedMetadataDir);
  else await saveFoundriesTrust(paths.foundriesTrustDir, verified.trustedAfter, verified.targetsBytes);
}

/** Removes what the verification left in scratch space (the ferry format's working copy). */
export async function discardStickScratch(verified: VerifiedStick): Promise<void> {
  if (verified.format === 'ferry') await discardScratch(verified);
}

/** The signed static delta entry of a ferry-format stick whose rootfs is one delta file; undefined otherwise. */
export function staticDeltaOf(verified: VerifiedStick): StaticDeltaRootfs | undefined {
  return verified.format === 'ferry' ? verified.bundle.rootfs : undefined;
}
