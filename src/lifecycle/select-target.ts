import { FerryError } from '../errors.js';
import { wrongBundleType, type BundleTargets } from '../tuf/bundle-targets.js';
import { compareVersions, type Target } from '../tuf/target.js';

export interface DeviceFacts {
  readonly hardwareId: string;
  readonly tags: readonly string[];
  readonly production: boolean;
}

export interface SelectionInput {
  readonly bundle: BundleTargets;
  readonly targets: readonly Target[];
  readonly unusable: readonly string[];
  readonly facts: DeviceFacts;
  /** Commits whose commit object the bundle's ostree_repo holds. */
  readonly commitsInBundle: ReadonlySet<string>;
  readonly requestedName?: string | undefined;
}

/** Whether a target is for this device: its hardware id, and one of its tags when the device follows tags. */
export function fitsDevice(target: Target, facts: Pick<DeviceFacts, 'hardwareId' | 'tags'>): boolean {
  return (
    target.hardwareIds.includes(facts.hardwareId) &&
    (facts.tags.length === 0 || target.tags.some((tag) => facts.tags.includes(tag)))
  );
}

/**
 * Picks the target to install (reference §2): named in bundle-targets.json, for this hardware id, carrying one of
 * the device's tags, with its content on the stick; the highest version wins. Pure, so every refusal is tested
 * as a table.
 */
export function selectTarget(input: SelectionInput): Target {
  const { bundle, facts } = input;
  const wantedType = facts.production ? 'prod' : 'ci';
  if (bundle.type !== wantedType) throw wrongBundleType(bundle.type, wantedType);
  if (facts.tags.length > 0 && !bundle.tags.some((tag) => facts.tags.includes(tag))) {
    throw new FerryError(
      'BUNDLE_METADATA_INVALID',
      `bundle-targets.json: the bundle is for tag ${bundle.tags.map((tag) => `"${tag}"`).join(', ')}; this device follows ${facts.tags.map((tag) => `"${tag}"`).join(', ')}`,
    );
  }

  let candidates = [...input.targets];
  if (input.requestedName !== undefined) {
    candidates = candidates.filter((target) => target.name === input.requestedName);
    if (candidates.length === 0) {
      throw new FerryError(
        'TARGET_NOT_IN_BUNDLE',
        `target "${input.requestedName}" is not in this bundle (it carries: ${bundle.targets.join(', ') || 'nothing'})`,
      );
    }
  }
  if (candidates.length === 0) {
    const why = input.unusable.length > 0 ? `: ${input.unusable.join('; ')}` : '';
    throw new FerryError('NO_MATCHING_TARGET', `the bundle names no usable target${why}`);
  }

  const forHardware = candidates.filter((target) => target.hardwareIds.includes(facts.hardwareId));
  if (forHardware.length === 0) {
    const offered = [...new Set(candidates.flatMap((target) => target.hardwareIds))];
    throw new FerryError(
      'WRONG_HARDWARE_ID',
      `no target in the bundle is for hardware id "${facts.hardwareId}" (the bundle is for: ${offered.join(', ') || 'none'})`,
    );
  }

  const forTags =
    facts.tags.length === 0
      ? forHardware
      : forHardware.filter((target) => target.tags.some((tag) => facts.tags.includes(tag)));
  if (forTags.length === 0) {
    throw new FerryError(
      'NO_MATCHING_TARGET',
      `no target for hardware id "${facts.hardwareId}" carries the tag(s) ${facts.tags.map((tag) => `"${tag}"`).join(', ')}`,
    );
  }

  const withContent = forTags.filter((target) => input.commitsInBundle.has(target.commit));
  if (withContent.length === 0) {
    const best = highest(forTags);
    throw new FerryError('CONTENT_MISSING', `ostree_repo/ lacks commit ${best.commit} of target "${best.name}"`);
  }
  return highest(withContent);
}

function highest(targets: readonly Target[]): Target {
  return targets.reduce((best, target) => (compareVersions(target.version, best.version) > 0 ? target : best));
}
