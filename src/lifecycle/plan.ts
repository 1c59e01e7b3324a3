import { FerryError } from '../errors.js';
import type { BootFlags } from '../device/bootloader-env.js';
import type { DeviceStatus, TargetRef } from '../device/status-file.js';
import { compareVersions, type Target } from '../tuf/target.js';
import { decideTransition, type Transition } from './transition.js';

/**
 * The planner: from (device status, booted deployment, bootloader flags, verified choice) to one decision. Pure, with
 * no I/O, so that every transition can be tested as a table; the lifecycle modules then carry the decision out. What
 * `run` does is decided by its own planner, run-plan.ts.
 */

export interface BootedFacts {
  readonly commit: string;
}

export type InstallDecision =
  | { readonly action: 'refuse'; readonly error: FerryError }
  | { readonly action: 'already-installed'; readonly target: TargetRef }
  | {
      readonly action: 'stage';
      readonly target: TargetRef;
      readonly previous: TargetRef | null;
      readonly transition: Transition;
      /** The device already runs this target: only its apps are synced (the store completed, `run` starts them). */
      readonly sync: boolean;
    };

export function refOf(target: Target | TargetRef): TargetRef {
  return { name: target.name, version: target.version, commit: target.commit, apps: target.apps };
}

/**
 * What the device runs now, as far as ferry can name it: from the status record, else the highest version among
 * `known` (which the caller limits to targets for this device) with the booted commit.
 */
export function currentTargetOf(status: DeviceStatus, booted: BootedFacts, known: readonly Target[]): TargetRef | null {
  for (const candidate of [status.current, status.pending?.target, status.rollback, status.pending?.previous]) {
    if (candidate && candidate.commit === booted.commit) return candidate;
  }
  const match = known
    .filter((target) => target.commit === booted.commit)
    .reduce<Target | undefined>(
      (best, target) => (best === undefined || compareVersions(target.version, best.version) > 0 ? target : best),
      undefined,
    );
  return match === undefined ? null : refOf(match);
}

export function planInstall(input: {
  readonly status: DeviceStatus;
  readonly booted: BootedFacts;
  readonly flags: BootFlags;
  readonly selected: Target;
  /** The verified targets for this device: where the running target is looked up when the record does not name it. */
  readonly known: readonly Target[];
  readonly force: boolean;
  /**
   * When the device boots the selected target's commit: why its apps are not in sync (an app the store lacks, a
   * service without a running container), one line each; empty (or left out) when they are.
   */
  readonly appsOutOfSync?: readonly string[];
}): InstallDecision {
  const { status, booted, flags, selected } = input;
  if (flags.bootUpgradeAvailable) {
    return {
      action: 'refuse',
      error: new FerryError(
        'BOOT_FIRMWARE_REBOOT_FIRST',
        'a boot firmware update is waiting for a reboot (bootupgrade_available=1): reboot, then install again',
      ),
    };
  }
  if (status.pending !== null) {
    return {
      action: 'refuse',
      error: new FerryError(
        'INSTALL_PENDING',
        `target "${status.pending.target.name}" is installed and waits for ${status.pending.completion === 'reboot' ? 'a reboot' : 'an engine restart'} and \`run\``,
      ),
    };
  }
  // An inconsistent device may always take its own target again: that is how it is repaired (Mender).
  const repair = status.inconsistent !== null && status.inconsistent.target?.name === selected.name;
  const failedBefore = status.failedTargets.find(
    (entry) => entry.target.name === selected.name && entry.target.commit === selected.commit,
  );
  if (failedBefore !== undefined && !input.force && !repair) {
    return {
      action: 'refuse',
      error: new FerryError(
        'TARGET_FAILED_BEFORE',
        `target "${selected.name}" failed on this device at ${failedBefore.at} (${failedBefore.reason}); use --force to try it again`,
      ),
    };
  }
  const current = currentTargetOf(status, booted, input.known);
  // What runs now: the booted rootfs, and the apps of the current target (none if ferry does not know it).
  let transition = decideTransition({ commit: booted.commit, apps: current?.apps ?? {} }, selected);
  let sync = false;
  if (transition.kind === 'none') {
    const hasApps = Object.keys(selected.apps).length > 0;
    const outOfSync = input.appsOutOfSync ?? [];
    if (status.inconsistent !== null) {
      // Same rootfs and apps, but the apps are in no known state: start them again, as an apps-only update.
      transition = {
        kind: 'restart-engine',
        rootfsChanged: false,
        reasons: ['the device is inconsistent: its apps are started again'],
      };
    } else if (hasApps && (outOfSync.length > 0 || input.force)) {
      // As aktualizr-lite does: installing the running target syncs its apps; `run` then starts what is not running.
      transition = {
        kind: 'restart-engine',
        rootfsChanged: false,
        reasons:
          outOfSync.length > 0
            ? [`its apps are not in sync: ${outOfSync.join('; ')}`]
            : ['--force: its apps are synced again'],
      };
      sync = true;
    } else {
      return { action: 'already-installed', target: current ?? refOf(selected) };
    }
  }
  if (current !== null && !input.force && !repair && compareVersions(selected.version, current.version) < 0) {
    return {
      action: 'refuse',
      error: new FerryError(
        'DOWNGRADE_REFUSED',
        `target "${selected.name}" (version ${selected.version}) is older than the running "${current.name}" (version ${current.version}); use --force to downgrade`,
      ),
    };
  }
  return {
    action: 'stage',
    target: refOf(selected),
    previous: current ?? { name: 'unknown', version: '0', commit: booted.commit, apps: {} },
    transition,
    sync,
  };
}
