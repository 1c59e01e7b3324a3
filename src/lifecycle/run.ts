import { FerryError, describeCause } from '../errors.js';
import { readBooted, rebootSentinelPresent, type Device } from '../device/device.js';
import type { DeviceStatus, TargetRef } from '../device/status-file.js';
import { readBootFlags } from './install.js';
import { planRun } from './plan.js';
import { errorReport, recordOutcome, type CommandReport } from './report.js';

/** `run`: after the reboot, finish what `install` started, or record that the bootloader rolled it back. */
export async function runPending(device: Device): Promise<CommandReport> {
  const { status } = await device.statusFile.load();
  if (status.pending === null) {
    return { outcome: 'NOTHING_PENDING', message: 'no update is pending; nothing to do' };
  }
  try {
    const sentinel = await rebootSentinelPresent(device);
    const decision = planRun({
      status,
      rebootSentinelPresent: sentinel,
      booted: sentinel ? null : await readBooted(device),
      flags: await readBootFlags(device),
    });
    switch (decision.action) {
      case 'nothing-pending':
        return { outcome: 'NOTHING_PENDING', message: 'no update is pending; nothing to do' };
      case 'reboot-first':
        // Nothing is written: the operator only has to reboot.
        return {
          outcome: 'REBOOT_NOT_DONE_YET',
          message: `target "${decision.target.name}" is installed but the device has not rebooted yet: reboot, then run \`run\``,
        };
      case 'refuse':
        throw decision.error;
      case 'commit':
        return await commit(device, status, decision.target, decision.previous, decision.bootFirmwareUpdated);
      case 'rolled-back':
        return await recordRollback(device, status, decision.failed, decision.running);
    }
  } catch (error) {
    const report = errorReport(error);
    await recordOutcome(device, status, { command: 'run', state: 'ERROR', report });
    return report;
  }
}

async function commit(
  device: Device,
  status: DeviceStatus,
  target: TargetRef,
  previous: TargetRef | null,
  bootFirmwareUpdated: boolean,
): Promise<CommandReport> {
  try {
    await device.env.update({ upgrade_available: '0', bootcount: '0' });
  } catch (error) {
    throw new FerryError(
      'DEVICE_STATE_UNREADABLE',
      `cannot clear upgrade_available in the ${device.env.description}: ${describeCause(error)}`,
      { cause: error },
    );
  }
  const report: CommandReport = bootFirmwareUpdated
    ? {
        outcome: 'UPDATE_SUCCEEDED_BOOT_FIRMWARE',
        message: `update to "${target.name}" (version ${target.version}) succeeded; the boot firmware was updated too: an optional reboot confirms it`,
        data: { target },
      }
    : {
        outcome: 'UPDATE_SUCCEEDED',
        message: `update to "${target.name}" (version ${target.version}) succeeded`,
        data: { target },
      };
  await recordOutcome(
    device,
    status,
    { command: 'run', state: 'DONE', report, target: target.name },
    { current: target, rollback: previous, pending: null },
  );
  return report;
}

/**
 * The bootloader fell back to the previous deployment. The failed deployment is removed so that the running one is
 * the default again, the boot counters are cleared, and the target is remembered as failed.
 */
async function recordRollback(
  device: Device,
  status: DeviceStatus,
  failed: TargetRef,
  running: TargetRef | null,
): Promise<CommandReport> {
  const deployments = await device.sysroot.deployments();
  const failedDeployment = deployments.find((deployment) => deployment.commit === failed.commit);
  if (failedDeployment !== undefined) await device.sysroot.undeploy(failedDeployment.index);
  await device.env.update({ upgrade_available: '0', bootcount: '0', rollback: null });
  const report: CommandReport = {
    outcome: 'ROLLED_BACK',
    message: `target "${failed.name}" did not boot; the bootloader rolled back to "${running?.name ?? 'the previous deployment'}"; "${failed.name}" is recorded as failed`,
    data: { failed, running },
  };
  const at = new Date().toISOString();
  await recordOutcome(
    device,
    status,
    { command: 'run', state: 'ERROR', report, target: failed.name },
    {
      pending: null,
      current: running ?? status.current,
      failedTargets: [
        ...status.failedTargets,
        { target: failed, at, reason: 'the new rootfs did not boot; the bootloader rolled back' },
      ],
    },
  );
  return report;
}
