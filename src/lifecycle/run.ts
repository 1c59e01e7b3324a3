import { switchApps } from '../apps/app-runner.js';
import { FerryError, describeCause } from '../errors.js';
import { readBooted, rebootSentinelPresent, writeRebootSentinel, type Device } from '../device/device.js';
import type { DeviceStatus, PendingUpdate, TargetRef } from '../device/status-file.js';
import { readBootFlags } from './install.js';
import { planRun } from './plan.js';
import { errorReport, recordOutcome, type CommandReport } from './report.js';

/**
 * `run`: after the reboot (or the engine restart), finish what `install` started: start the target's apps and
 * commit, or roll back. Also records a rollback that the bootloader already did.
 */
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
        return await commit(device, status, status.pending, decision.bootFirmwareUpdated);
      case 'rolled-back':
        return await recordBootloaderRollback(device, status, decision.failed, decision.running);
    }
  } catch (error) {
    const report = errorReport(error);
    await recordOutcome(device, status, { command: 'run', state: 'ERROR', report });
    return report;
  }
}

function hasApps(...targets: Array<TargetRef | null>): boolean {
  return targets.some((target) => target !== null && Object.keys(target.apps).length > 0);
}

function isKnown(target: TargetRef | null): target is TargetRef {
  return target !== null && target.name !== 'unknown';
}

/** Booted on the pending target: start its apps, then commit, or start the way back. */
async function commit(
  device: Device,
  status: DeviceStatus,
  pending: PendingUpdate,
  bootFirmwareUpdated: boolean,
): Promise<CommandReport> {
  const { target, previous } = pending;
  if (hasApps(target, previous)) {
    await device.engine.ensureReachable();
    const result = await switchApps(
      device.engine,
      device.appStore,
      previous?.apps ?? {},
      target.apps,
      device.config.appsSettleMs,
    );
    if (!result.ok) return await appsFailed(device, status, pending, result.failures);
  }
  if (pending.rootfsChanged) {
    try {
      await device.boot.endTrial();
    } catch (error) {
      throw new FerryError(
        'DEVICE_STATE_UNREADABLE',
        `cannot clear upgrade_available in the ${device.boot.description}: ${describeCause(error)}`,
        { cause: error },
      );
    }
  }
  // The store keeps what runs now and what a rollback would go back to.
  const rollback = pending.completion === 'reboot' ? previous : status.rollback;
  await device.appStore.prune([target.apps, rollback?.apps ?? {}]);

  if (pending.rollbackOf !== undefined) {
    const report: CommandReport = {
      outcome: 'APPS_ROLLED_BACK',
      message: `rolled back to "${target.name}" after the apps of "${pending.rollbackOf.name}" failed; its apps run again`,
      data: { target, failed: pending.rollbackOf },
    };
    await recordOutcome(
      device,
      status,
      { command: 'run', state: 'ERROR', report, target: target.name },
      { current: target, pending: null },
    );
    return report;
  }
  const done = `update to "${target.name}" (version ${target.version}) succeeded`;
  const report: CommandReport = bootFirmwareUpdated
    ? {
        outcome: 'UPDATE_SUCCEEDED_BOOT_FIRMWARE',
        message: `${done}; the boot firmware was updated too: an optional reboot confirms it`,
        data: { target },
      }
    : { outcome: 'UPDATE_SUCCEEDED', message: done, data: { target } };
  // DONE moves the rollback point (a reboot happened); UPDATED, with no reboot, leaves it where it was.
  const state = pending.completion === 'reboot' ? 'DONE' : 'UPDATED';
  await recordOutcome(
    device,
    status,
    { command: 'run', state, report, target: target.name },
    { current: target, rollback, pending: null },
  );
  return report;
}

/**
 * The target's apps did not all come up. With the same rootfs, the previous apps are started again right away.
 * On a new rootfs, the previous deployment is made the default again and the way back completes after a reboot.
 */
async function appsFailed(
  device: Device,
  status: DeviceStatus,
  pending: PendingUpdate,
  failures: readonly string[],
): Promise<CommandReport> {
  const { target, previous } = pending;
  const at = new Date().toISOString();
  const why = failures.join('; ');
  const failedTargets = [...status.failedTargets, { target, at, reason: `apps failed: ${why}` }];

  if (pending.rollbackOf !== undefined || !isKnown(previous)) {
    const report: CommandReport = pending.rollbackOf
      ? {
          outcome: 'APPS_ROLLBACK_FAILED',
          message: `rolled back to "${target.name}", but its apps did not start: ${why}`,
        }
      : {
          outcome: 'APPS_FAILED_NO_ROLLBACK',
          message: `the apps of "${target.name}" failed and there is no known version to roll back to: ${why}`,
        };
    await recordOutcome(
      device,
      status,
      { command: 'run', state: 'ERROR', report, target: target.name },
      { pending: null, ...(pending.rollbackOf ? {} : { failedTargets }) },
    );
    return report;
  }

  if (pending.rootfsChanged) {
    await switchApps(device.engine, device.appStore, target.apps, {}, 0);
    await device.sysroot.deploy(previous.commit);
    await device.boot.endTrial();
    await writeRebootSentinel(device);
    const report: CommandReport = {
      outcome: 'APPS_FAILED_REBOOT_TO_ROLLBACK',
      message: `the apps of "${target.name}" failed on its new rootfs (${why}); "${previous.name}" is the default again: reboot, then run \`run\``,
      data: { failed: target, next: previous },
    };
    await recordOutcome(
      device,
      status,
      { command: 'run', state: 'ERROR', report, target: target.name },
      {
        failedTargets,
        pending: {
          target: previous,
          previous: target,
          installedAt: at,
          completion: 'reboot',
          rootfsChanged: true,
          rollbackOf: target,
        },
      },
    );
    return report;
  }

  const restore = await switchApps(
    device.engine,
    device.appStore,
    target.apps,
    previous.apps,
    device.config.appsSettleMs,
  );
  const report: CommandReport = restore.ok
    ? {
        outcome: 'APPS_ROLLED_BACK',
        message: `the apps of "${target.name}" failed (${why}); the apps of "${previous.name}" run again`,
        data: { failed: target, running: previous },
      }
    : {
        outcome: 'APPS_ROLLBACK_FAILED',
        message: `the apps of "${target.name}" failed (${why}), and the apps of "${previous.name}" did not start again: ${restore.failures.join('; ')}`,
        data: { failed: target },
      };
  await recordOutcome(
    device,
    status,
    { command: 'run', state: 'ERROR', report, target: target.name },
    { pending: null, current: previous, failedTargets },
  );
  return report;
}

/**
 * The bootloader fell back to the previous deployment. The failed deployment is removed so that the running one is
 * the default again, the boot counters are cleared, the previous apps run again, and the target is remembered as
 * failed.
 */
async function recordBootloaderRollback(
  device: Device,
  status: DeviceStatus,
  failed: TargetRef,
  running: TargetRef | null,
): Promise<CommandReport> {
  const deployments = await device.sysroot.deployments();
  const failedDeployment = deployments.find((deployment) => deployment.commit === failed.commit);
  if (failedDeployment !== undefined) await device.sysroot.undeploy(failedDeployment.index);
  await device.boot.endTrial();
  let appsNote = '';
  if (running !== null && hasApps(running)) {
    await device.engine.ensureReachable();
    const restore = await switchApps(device.engine, device.appStore, {}, running.apps, device.config.appsSettleMs);
    if (!restore.ok) appsNote = `; its apps did not all start: ${restore.failures.join('; ')}`;
  }
  const report: CommandReport = {
    outcome: appsNote === '' ? 'ROLLED_BACK' : 'APPS_ROLLBACK_FAILED',
    message: `target "${failed.name}" did not boot; the bootloader rolled back to "${running?.name ?? 'the previous deployment'}"; "${failed.name}" is recorded as failed${appsNote}`,
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
