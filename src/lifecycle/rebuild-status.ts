import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { BootFlags } from '../device/bootloader-env.js';
import { readBootFlags, readBooted, rebootSentinelPresent, type Device } from '../device/device.js';
import type { Deployment } from '../ostree/sysroot.js';
import { emptyStatus, type DeviceStatus, type TargetRef } from '../device/status-file.js';
import { compareVersions, storedTargetsOf, type Target } from '../tuf/target.js';
import { refOf } from './plan.js';
import { fitsDevice, type DeviceFacts } from './select-target.js';
import { FOUNDRIES_TARGETS_FILE } from '../device/foundries-trust-file.js';

/**
 * Rebuilds the status record from what the device shows when the record itself could not be read (it was moved
 * aside to `.broken`): the booted deployment, the default deployment, the boot trial flags and the trusted targets.
 * Only targets for this device (its hardware id, one of its tags) are candidates: a commit shared by another board's
 * target names nothing here. Pure: facts in, a record out.
 */
export function rebuildStatus(facts: {
  readonly bootedCommit: string;
  readonly deployments: readonly Deployment[];
  readonly flags: BootFlags;
  readonly rebootPending: boolean;
  readonly known: readonly Target[];
  readonly device: Pick<DeviceFacts, 'hardwareId' | 'tags'>;
  readonly recovered: string;
}): DeviceStatus {
  const byCommit = (commit: string | undefined): TargetRef | null => {
    const matches = facts.known
      .filter((target) => target.commit === commit && fitsDevice(target, facts.device))
      .sort((a, b) => compareVersions(b.version, a.version));
    return matches[0] ? refOf(matches[0]) : null;
  };
  const booted = byCommit(facts.bootedCommit);
  const defaultCommit = facts.deployments[0]?.commit;
  const base: DeviceStatus = {
    ...emptyStatus(),
    state: 'DONE',
    reason: `${facts.recovered}; rebuilt from the device`,
    current: booted,
  };
  if (!facts.flags.upgradeAvailable) return base;
  // A boot trial runs: an install deployed a new default. Before its reboot the device still boots the previous one;
  // after it, it boots the new one with the previous one as rollback.
  const waiting = facts.rebootPending || defaultCommit !== facts.bootedCommit;
  const target = byCommit(waiting ? defaultCommit : facts.bootedCommit);
  const previous = waiting ? booted : byCommit(facts.deployments[1]?.commit);
  if (target === null) return base;
  return {
    ...base,
    state: 'INPROGRESS',
    current: previous,
    pending: {
      phase: 'staged',
      target,
      previous,
      installedAt: new Date().toISOString(),
      completion: 'reboot',
      rootfsChanged: true,
      repair: false,
    },
  };
}

/**
 * The targets the device trusts, as verified at the last install of a stick of each format: the ferry format's
 * trusted targets.json and the one the Foundries trust keeps.
 */
async function trustedTargets(device: Device): Promise<Target[]> {
  const files = [
    path.join(device.paths.trustedMetadataDir, 'targets.json'),
    path.join(device.paths.foundriesTrustDir, FOUNDRIES_TARGETS_FILE),
  ];
  const texts = await Promise.all(files.map((file) => fs.readFile(file, 'utf8').catch(() => '')));
  return texts.flatMap(storedTargetsOf);
}

/** Loads the status record; an unreadable one is moved aside and the record rebuilt from the device and saved. */
export async function loadDeviceStatus(device: Device): Promise<{ status: DeviceStatus; recovered?: string }> {
  const loaded = await device.statusFile.load();
  if (loaded.recovered === undefined) return loaded;
  const status = rebuildStatus({
    bootedCommit: (await readBooted(device)).commit,
    deployments: await device.sysroot.deployments(),
    flags: await readBootFlags(device),
    rebootPending: await rebootSentinelPresent(device),
    known: await trustedTargets(device),
    device: device.config,
    recovered: loaded.recovered,
  });
  await device.statusFile.save(status);
  return { status, recovered: loaded.recovered };
}
