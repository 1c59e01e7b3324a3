import { loadDeviceStatus } from './rebuild-status.js';
import { checkApps, startApps, switchApps, watchApps } from '../apps/app-runner.js';
import {
  currentBootId,
  readBootFlags,
  readBooted,
  rebootSentinelPresent,
  writeRebootSentinel,
  type Device,
} from '../device/device.js';
import type { PendingUpdate, TargetRef } from '../device/status-file.js';
import type { AppPin } from '../tuf/target.js';
import { FerryError, describeCause } from '../errors.js';
import { Journal } from './journal.js';
import { planRun } from './plan.js';
import { STEPS, type StepInfo } from './steps.js';
import { undoInterruptedInstall } from './recover.js';
import { errorReport, StatusRecorder, type CommandReport } from './report.js';
import type { ProgressListener } from '../progress.js';

export interface RunOptions {
  /** Start the apps and return at once (state TESTING, exit 105); a later `run` finishes the testing window. */
  readonly noWait?: boolean;
  /** The testing window as it passes, for a countdown or a dashboard. */
  readonly progress?: ProgressListener | undefined;
}

/** The states an install passes through before it records its update as pending. */
const STATES_OF_AN_UNFINISHED_INSTALL: ReadonlySet<string> = new Set(['QUEUED', 'VERIFYING', 'COPYING']);

/** A rollback's apps are watched for at most this long: the previous apps were known to run. */
const RESTORE_WINDOW_MS = 10_000;

/**
 * `run`: after the reboot (or the engine restart), finish what `install` started: start the target's apps, watch
 * them through the testing window, then commit, or roll back. Also finishes a rollback the bootloader already did.
 */
export async function runPending(device: Device, options: RunOptions = {}): Promise<CommandReport> {
  const { status } = await loadDeviceStatus(device);
  const recorder = new StatusRecorder(device, status, 'run');
  const journal = await Journal.open(device.paths.journalFile, 'run');
  const interrupted = journal.describeInterrupted();
  if (interrupted !== null) recorder.log(interrupted);
  if (status.pending === null) {
    if (!STATES_OF_AN_UNFINISHED_INSTALL.has(status.state)) return restoreApps(device, recorder);
    // The install stopped before it recorded anything pending: nothing it copied is in use, and the next install
    // clears what it left.
    const report: CommandReport = {
      outcome: 'INSTALL_INTERRUPTED',
      message: `the last install stopped while ${status.state} (power cut or kill), before anything of it was in use: install again`,
    };
    await recorder.finish({ state: 'WONTGO', report });
    return report;
  }
  let report: CommandReport | undefined;
  try {
    const sentinel = await rebootSentinelPresent(device);
    const decision = planRun({
      status,
      rebootSentinelPresent: sentinel,
      booted: sentinel ? null : await readBooted(device),
      flags: await readBootFlags(device),
      defaultCommit: (await device.sysroot.deployments())[0]?.commit ?? null,
      fallbackInterrupted: fallbackInterrupted(journal),
    });
    switch (decision.action) {
      case 'nothing-pending':
        report = { outcome: 'NOTHING_PENDING', message: 'no update is pending; nothing to do' };
        break;
      case 'reboot-first':
        // Nothing is written: the operator only has to reboot.
        report = {
          outcome: 'REBOOT_NOT_DONE_YET',
          message: `target "${decision.target.name}" is installed but the device has not rebooted yet: reboot, then run \`run\``,
        };
        break;
      case 'refuse':
        throw decision.error;
      case 'undo-interrupted':
        report = await undoInterrupted(device, recorder, journal, status.pending);
        break;
      case 'commit':
        report = await completeUpdate(device, recorder, journal, status.pending, decision.bootFirmwareUpdated, options);
        break;
      case 'rolled-back':
        report = await finishBootloaderRollback(device, recorder, journal, decision.failed, decision.running);
        break;
    }
    return report;
  } catch (error) {
    report = errorReport(error);
    await recorder.finish({ state: 'ERROR', report, cause: error });
    return report;
  } finally {
    await journal.end(report?.outcome ?? 'INTERNAL_ERROR');
  }
}

/**
 * The last run was cut on the bootloader-rollback path: it had seen the bootloader fall back. Once it removed the
 * failed deployment, the boot state alone no longer shows that (the previous deployment is the default again, and
 * the boot counter was reset), so without this a power cut there turned a failed target into an interrupted install.
 */
function fallbackInterrupted(journal: Journal): boolean {
  const interrupted = journal.interrupted;
  if (interrupted === null || interrupted.command !== 'run' || interrupted.step === null) return false;
  return (STEPS as Record<string, StepInfo>)[interrupted.step]?.path === 'bootloader-rollback';
}

/**
 * Nothing is pending: the apps of the target the device runs that are not running (a container removed by hand, or
 * lost by the engine) are started again, as aktualizr-lite keeps the running target's apps in sync. This is no
 * update: the state stays as it is, and a history line (with the last error, if they do not start) says what was done.
 */
async function restoreApps(device: Device, recorder: StatusRecorder): Promise<CommandReport> {
  const nothing: CommandReport = { outcome: 'NOTHING_PENDING', message: 'no update is pending; nothing to do' };
  const current = recorder.status.current;
  if (current === null || !hasApps(current)) return nothing;
  let report: CommandReport;
  try {
    // Only the target whose rootfs runs: a record that names another one is not acted on.
    if ((await readBooted(device)).commit !== current.commit) return nothing;
    await device.engine.ensureReachable();
    const down: Record<string, AppPin> = {};
    const why: string[] = [];
    for (const [name, pin] of Object.entries(current.apps)) {
      const checked = await checkApps(device.engine, device.appStore, { [name]: pin }, new Date());
      if (!checked.ok) {
        down[name] = pin;
        why.push(...checked.failures);
      }
    }
    const names = Object.keys(down);
    if (names.length === 0) return { ...nothing, message: `no update is pending; the apps of "${current.name}" run` };
    recorder.log(`the apps of "${current.name}" are not all running: ${why.join('; ')}`);
    const restored = await switchApps(
      device.engine,
      device.appStore,
      {},
      down,
      Math.min(device.config.testingWindowMs, RESTORE_WINDOW_MS),
    );
    report = restored.ok
      ? {
          outcome: 'APPS_RESTORED',
          message: `no update is pending; the apps of "${current.name}" that were not running were started again: ${names.join(', ')}`,
          data: { target: current, restored: names },
        }
      : {
          outcome: 'APPS_RESTORE_FAILED',
          message: `no update is pending, but the apps of "${current.name}" were not running (${why.join('; ')}) and did not start again: ${restored.failures.join('; ')}`,
          data: { target: current },
        };
  } catch (error) {
    report = errorReport(error);
    await recorder.note({ report, target: current.name, cause: error }, { lastError: true });
    return report;
  }
  await recorder.note({ report, target: current.name }, { lastError: report.outcome !== 'APPS_RESTORED' });
  return report;
}

/**
 * The install stopped before it finished and its target never ran: what it wrote to the boot state is undone, and
 * the apps that ran before are brought up again (a power cut may have left them down).
 */
async function undoInterrupted(
  device: Device,
  recorder: StatusRecorder,
  journal: Journal,
  pending: PendingUpdate,
): Promise<CommandReport> {
  const { target } = pending;
  await undoInterruptedInstall(device, journal, pending, (line) => recorder.log(line));
  const running = isKnown(pending.previous) ? pending.previous : recorder.status.current;
  if (running !== null && hasApps(running)) {
    await device.engine.ensureReachable();
    const started = await startApps(device.engine, device.appStore, {}, running.apps);
    if (!started.ok) {
      const report: CommandReport = {
        outcome: 'APPS_ROLLBACK_FAILED',
        message: `the install of "${target.name}" was interrupted and undone, but the apps of "${running.name}" did not start: ${started.failures.join('; ')}`,
      };
      const at = new Date().toISOString();
      await journal.step('recover.record', () =>
        recorder.finish(
          { state: 'ERROR', report, target: target.name },
          { pending: null, current: running, inconsistent: { reason: report.message, at, target: running } },
        ),
      );
      return report;
    }
  }
  const report: CommandReport = {
    outcome: 'INSTALL_INTERRUPTED',
    message: `the install of "${target.name}" stopped before it finished; it was undone and the device runs ${running === null ? 'what it ran before' : `"${running.name}"`}: install again`,
    data: { target, running },
  };
  await journal.step('recover.record', () =>
    recorder.finish({ state: 'ERROR', report, target: target.name }, { pending: null, current: running }),
  );
  return report;
}

function hasApps(...targets: Array<TargetRef | null>): boolean {
  return targets.some((target) => target !== null && Object.keys(target.apps).length > 0);
}

/** The same target: same name, rootfs and app versions. */
function sameTarget(a: TargetRef, b: TargetRef): boolean {
  const digests = (target: TargetRef) =>
    JSON.stringify(
      Object.entries(target.apps)
        .map(([name, pin]) => [name, pin.digest])
        .sort(),
    );
  return a.name === b.name && a.commit === b.commit && digests(a) === digests(b);
}

function isKnown(target: TargetRef | null): target is TargetRef {
  return target !== null && target.name !== 'unknown';
}

/** Booted on the pending target: start its apps, watch them through the testing window, then commit. */
async function completeUpdate(
  device: Device,
  recorder: StatusRecorder,
  journal: Journal,
  pending: PendingUpdate,
  bootFirmwareUpdated: boolean,
  options: RunOptions,
): Promise<CommandReport> {
  const { target, previous } = pending;
  if (hasApps(target, previous)) {
    await device.engine.ensureReachable();
    const boot = await currentBootId(device);
    let testing = pending.testing;
    if (testing?.boot !== undefined && testing.boot !== boot) {
      // A power cut restarted the apps: what the window saw before it says nothing about them now.
      recorder.log(`the testing window that began at ${testing.since} was cut by a reboot; it starts again`);
      testing = undefined;
    }
    if (testing === undefined) {
      const started = await journal.step('run.apps-start', () =>
        startApps(device.engine, device.appStore, previous?.apps ?? {}, target.apps),
      );
      if (!started.ok) return await appsFailed(device, recorder, journal, pending, started.failures);
      const since = new Date();
      testing = {
        since: since.toISOString(),
        until: new Date(since.getTime() + device.config.testingWindowMs).toISOString(),
        boot,
      };
    }
    const window = testing;
    const until = new Date(testing.until);
    const secondsLeft = () => Math.max(0, Math.ceil((until.getTime() - Date.now()) / 1000));
    await journal.step('run.testing-record', () =>
      recorder.phase(
        'TESTING',
        `the apps of "${target.name}" must keep running until ${window.until}`,
        { unit: 'seconds-left', value: secondsLeft() },
        { pending: { ...pending, testing: window } },
      ),
    );
    if (options.noWait && secondsLeft() > 0) {
      const report: CommandReport = {
        outcome: 'TESTING',
        message: `the apps of "${target.name}" are up; run again after ${testing.until} to commit the update`,
        data: { target, testingUntil: testing.until },
      };
      await recorder.finish(
        { state: 'TESTING', report, target: target.name, progress: { unit: 'seconds-left', value: secondsLeft() } },
        { pending: { ...pending, testing } },
      );
      return report;
    }
    const testingProgress = testingWindowProgress(window, target.name, options.progress);
    const watched = await journal.step('run.apps-watch', () =>
      watchApps(device.engine, device.appStore, target.apps, {
        since: new Date(window.since),
        until,
        onTick: (left) => {
          testingProgress.left(left);
          return recorder.progress({ unit: 'seconds-left', value: left });
        },
      }),
    );
    if (!watched.ok) return await appsFailed(device, recorder, journal, pending, watched.failures);
    testingProgress.passed();
  }
  if (pending.rootfsChanged) {
    try {
      await journal.step('run.boot-trial-end', () => device.boot.endTrial());
    } catch (error) {
      throw new FerryError(
        'DEVICE_STATE_UNREADABLE',
        `cannot end the boot trial in the ${device.boot.description}: ${describeCause(error)}`,
        { cause: error },
      );
    }
  }
  // The store keeps what runs now and what a rollback would go back to.
  const rollback = pending.completion === 'reboot' ? previous : recorder.status.rollback;
  await journal.step('run.apps-prune', () => device.appStore.prune([target.apps, rollback?.apps ?? {}]));

  if (pending.rollbackOf !== undefined) {
    const report: CommandReport = {
      outcome: 'APPS_ROLLED_BACK',
      message: `rolled back to "${target.name}" after the apps of "${pending.rollbackOf.name}" failed; its apps run again`,
      data: { target, failed: pending.rollbackOf },
    };
    await journal.step('run.commit-record', () =>
      recorder.finish(
        { state: 'ERROR', report, target: target.name },
        { current: target, pending: null, inconsistent: null },
      ),
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
  await journal.step('run.commit-record', () =>
    recorder.finish(
      { state, report, target: target.name },
      { current: target, rollback, pending: null, inconsistent: null, lastError: null },
    ),
  );
  return report;
}

/**
 * The target's apps did not all keep running. With the same rootfs, the previous apps are started again right away.
 * On a new rootfs, the previous deployment is made the default again and the way back completes after a reboot.
 * When even that fails, or there is nothing to go back to, the device is INCONSISTENT.
 */
async function appsFailed(
  device: Device,
  recorder: StatusRecorder,
  journal: Journal,
  pending: PendingUpdate,
  failures: readonly string[],
): Promise<CommandReport> {
  const { target, previous } = pending;
  const at = new Date().toISOString();
  const why = failures.join('; ');
  const status = recorder.status;
  const failedTargets = [...status.failedTargets, { target, at, reason: `apps failed: ${why}` }];
  const inconsistent = (on: TargetRef, reason: string) => ({ inconsistent: { reason, at, target: on } });

  if (pending.rollbackOf !== undefined) {
    const report: CommandReport = {
      outcome: 'APPS_ROLLBACK_FAILED',
      message: `rolled back to "${target.name}", but its apps did not start: ${why}`,
    };
    await recorder.finish(
      { state: 'ERROR', report, target: target.name },
      { pending: null, current: target, ...inconsistent(target, report.message) },
    );
    return report;
  }
  if (previous !== null && sameTarget(previous, target)) {
    // A sync (or repair) of the target the device runs: there is no other version to go back to, and the running
    // target is not recorded as failed, so that installing it again stays allowed.
    const report: CommandReport = {
      outcome: 'APPS_FAILED_NO_ROLLBACK',
      message: `the apps of "${target.name}", the target the device runs, did not start: ${why}`,
    };
    await recorder.finish(
      { state: 'ERROR', report, target: target.name },
      { pending: null, current: target, ...inconsistent(target, report.message) },
    );
    return report;
  }
  if (!isKnown(previous)) {
    // Nothing to fall back to: the boot trial ends, so that no later reboot falls back to an unknown deployment.
    if (pending.rootfsChanged) await device.boot.endTrial();
    const report: CommandReport = {
      outcome: 'APPS_FAILED_NO_ROLLBACK',
      message: `the apps of "${target.name}" failed and there is no known version to roll back to: ${why}`,
    };
    await recorder.finish(
      { state: 'ERROR', report, target: target.name },
      { pending: null, current: target, failedTargets, ...inconsistent(target, report.message) },
    );
    return report;
  }

  if (pending.rootfsChanged) {
    try {
      await journal.step('run.rollback-apps-stop', () => startApps(device.engine, device.appStore, target.apps, {}));
      await journal.step('run.rollback-deploy', () => device.sysroot.deploy(previous.commit), previous.commit);
      await journal.step('run.rollback-trial-end', () => device.boot.endTrial());
    } catch (error) {
      const report: CommandReport = {
        outcome: 'APPS_ROLLBACK_FAILED',
        message: `the apps of "${target.name}" failed (${why}), and making "${previous.name}" the default again failed: ${describeCause(error)}`,
      };
      await recorder.finish(
        { state: 'ERROR', report, target: target.name, cause: error },
        { pending: null, current: target, failedTargets, ...inconsistent(target, report.message) },
      );
      return report;
    }
    const report: CommandReport = {
      outcome: 'APPS_FAILED_REBOOT_TO_ROLLBACK',
      message: `the apps of "${target.name}" failed on its new rootfs (${why}); "${previous.name}" is the default again: reboot, then run \`run\``,
      data: { failed: target, next: previous },
    };
    // The marker before the record: once the record names the previous target as pending, the boot that runs now
    // (the failed target's) must not be read as a rollback.
    await journal.step('run.rollback-record', async () => {
      await writeRebootSentinel(device);
      await recorder.finish(
        { state: 'ERROR', report, target: target.name },
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
    });
    return report;
  }

  const restore = await journal.step('run.rollback-apps-switch', () =>
    switchApps(
      device.engine,
      device.appStore,
      target.apps,
      previous.apps,
      Math.min(device.config.testingWindowMs, RESTORE_WINDOW_MS),
    ),
  );
  if (restore.ok) {
    const report: CommandReport = {
      outcome: 'APPS_ROLLED_BACK',
      message: `the apps of "${target.name}" failed (${why}); the apps of "${previous.name}" run again`,
      data: { failed: target, running: previous },
    };
    await journal.step('run.rollback-record', () =>
      recorder.finish(
        { state: 'ERROR', report, target: target.name },
        { pending: null, current: previous, failedTargets },
      ),
    );
    return report;
  }
  const report: CommandReport = {
    outcome: 'APPS_ROLLBACK_FAILED',
    message: `the apps of "${target.name}" failed (${why}), and the apps of "${previous.name}" did not start again: ${restore.failures.join('; ')}`,
    data: { failed: target },
  };
  await recorder.finish(
    { state: 'ERROR', report, target: target.name },
    { pending: null, current: previous, failedTargets, ...inconsistent(previous, report.message) },
  );
  return report;
}

/**
 * The bootloader fell back to the previous deployment. The failed deployment is removed so that the running one is
 * the default again, the boot trial ends, the previous apps run again, and the target is remembered as failed.
 */
async function finishBootloaderRollback(
  device: Device,
  recorder: StatusRecorder,
  journal: Journal,
  failed: TargetRef,
  running: TargetRef | null,
): Promise<CommandReport> {
  const status = recorder.status;
  const deployments = await device.sysroot.deployments();
  const failedDeployment = deployments.find((deployment) => deployment.commit === failed.commit);
  if (failedDeployment !== undefined) {
    // With the count back at zero and the trial still armed, a power cut after the undeploy boots the running
    // deployment (now the only default) instead of falling back past it.
    await journal.step('run.fallback-bootcount-reset', () => device.boot.resetBootCount());
    await journal.step('run.fallback-undeploy', () => device.sysroot.undeploy(failedDeployment.index), failed.commit);
  }
  await journal.step('run.fallback-trial-end', () => device.boot.endTrial());
  const at = new Date().toISOString();
  const failedTargets = [
    ...status.failedTargets,
    { target: failed, at, reason: 'the new rootfs did not boot; the bootloader rolled back' },
  ];
  const rolledBack = `target "${failed.name}" did not boot; the bootloader rolled back to "${running?.name ?? 'the previous deployment'}"; "${failed.name}" is recorded as failed`;
  if (running !== null && hasApps(running)) {
    await device.engine.ensureReachable();
    const restore = await journal.step('run.fallback-apps-restore', () =>
      switchApps(
        device.engine,
        device.appStore,
        {},
        running.apps,
        Math.min(device.config.testingWindowMs, RESTORE_WINDOW_MS),
      ),
    );
    if (!restore.ok) {
      const report: CommandReport = {
        outcome: 'APPS_ROLLBACK_FAILED',
        message: `${rolledBack}; but its apps did not start: ${restore.failures.join('; ')}`,
        data: { failed, running },
      };
      await recorder.finish(
        { state: 'ERROR', report, target: failed.name },
        {
          pending: null,
          current: running,
          failedTargets,
          inconsistent: { reason: report.message, at, target: running },
        },
      );
      return report;
    }
  }
  const report: CommandReport = { outcome: 'ROLLED_BACK', message: rolledBack, data: { failed, running } };
  await journal.step('run.fallback-record', () =>
    recorder.finish(
      { state: 'ERROR', report, target: failed.name },
      { pending: null, current: running ?? status.current, failedTargets },
    ),
  );
  return report;
}

/**
 * The testing window as progress events: the seconds passed of its length, from the moment the window began (a
 * window resumed after `--no-wait` or a power cut starts part-way).
 */
function testingWindowProgress(
  window: { since: string; until: string },
  target: string,
  listener: ProgressListener | undefined,
): { left(seconds: number): void; passed(): void } {
  const total = Math.max(0, Math.round((Date.parse(window.until) - Date.parse(window.since)) / 1000));
  const report = (seconds: number) => listener?.({ phase: 'testing', seconds, total, target });
  return {
    left: (seconds) => report(Math.max(0, Math.min(total, total - seconds))),
    passed: () => report(total),
  };
}
