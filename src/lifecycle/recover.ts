import { readBooted, rebootSentinelPresent, removeRebootSentinel, type Device } from '../device/device.js';
import type { PendingUpdate } from '../device/status-file.js';
import type { Journal } from './journal.js';

/**
 * Undoes the device-side steps of an install that stopped before it finished (its pending record is still
 * "deploying") and whose target never ran. The order keeps every intermediate state bootable: the new deployment
 * goes first, while the boot trial is still armed, so that a power cut between the two still boots (and counts) the
 * previous deployment; only then does the trial end.
 */
export async function undoInterruptedInstall(
  device: Device,
  journal: Journal,
  pending: PendingUpdate,
  log: (line: string) => void,
): Promise<void> {
  const sentinel = await rebootSentinelPresent(device);
  if (pending.rootfsChanged) {
    const booted = await readBooted(device);
    const deployments = await device.sysroot.deployments();
    const fresh = deployments[0];
    if (fresh !== undefined && fresh.commit === pending.target.commit && booted.commit !== pending.target.commit) {
      await journal.step('recover.undeploy', () => device.sysroot.undeploy(fresh.index), pending.target.commit);
      log(`removed the deployment of "${pending.target.name}" (${pending.target.commit}) the interrupted install left`);
    }
    await journal.step('recover.trial-end', () => device.boot.endTrial());
  }
  if (sentinel) await journal.step('recover.sentinel-remove', () => removeRebootSentinel(device));
}
