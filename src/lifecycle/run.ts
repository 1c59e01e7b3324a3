import { loadDeviceStatus } from './rebuild-status.js';
import {
  checkApps,
  startApps,
  switchApps,
  watchApps,
  type AppsResult,
  type GoalsReport,
} from '../apps/device/app-runner.js';
import type { CheckPhase } from '../device/health-checks.js';
import { errorReport, type CommandReport } from '../command-report.js';
import {
  currentBootId,
  readBootFlags,
  readBooted,
  rebootSentinelPresent,
  writeRebootSentinel,
  type Device,
} from '../device/device.js';
import type { PendingUpdate, TargetRef, TestingWindow } from '../device/status-file.js';
import { describeCause } from '../errors.js';
import { finalizeWithCallbacks } from './callbacks.js';
import { Journal } from './journal.js';
import {
  afterWindowStart,
  appsSwitchEnd,
  bootTrialEndFailed,
  commitEnd,
  engineUnavailable,
  fallbackEnd,
  hasApps,
  planAppsFailed,
  planIdleRun,
  planRun,
  restoreEnd,
  restoreNeeded,
  restoreWanted,
  rollbackPointAfter,
  rootfsReturnEnd,
  testingPhase,
  runningAfterUndo,
  undoEnd,
  windowToResume,
  type AppsOutcome,
  type RunEnd,
} from './run-plan.js';
import { STEPS, type StepInfo } from './steps.js';
import { undoInterruptedInstall } from './recover.js';
import { StatusRecorder } from './status-recorder.js';
import type { ProgressListener } from '../progress.js';

export interface RunOptions {
  /** Start the apps and return at once, while their testing window runs; a later `run` finishes the window. */
  readonly noWait?: boolean;
  /** The testing window as it passes, for a countdown or a dashboard. */
  readonly progress?: ProgressListener | undefined;
}

/** A rollback's apps are watched for at most this long: the previous apps were known to run. */
const RESTORE_WINDOW_MS = 10_000;

/**
 * `run`: after the reboot (or the engine restart), finish what `install` started: start the target's apps, watch
 * them through the testing window, then commit, or roll back. Also finishes a rollback the bootloader already did.
 * The run planner (run-plan.ts) decides every step and every outcome; this module carries the steps out and hands
 * their results back to it.
 */
export async function runPending(device: Device, options: RunOptions = {}): Promise<CommandReport> {
  const { status } = await loadDeviceStatus(device);
  const recorder = new StatusRecorder(device, status, 'run');
  const journal = await Journal.open(device.paths.journalFile, 'run');
  const interrupted = journal.describeInterrupted();
  if (interrupted !== null) recorder.log(interrupted);
  if (status.pending === null) {
    const decision = planIdleRun(status);
    if (decision.action === 'restore-apps') return restoreApps(device, recorder, journal, decision.target);
    return recordEnd(device, recorder, journal, decision.end);
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
      case 'install-stopped-early':
      case 'reboot-first':
        report = await recordEnd(device, recorder, journal, decision.end);
        break;
      case 'restore-apps':
        report = await restoreApps(device, recorder, journal, decision.target);
        break;
      case 'refuse':
        throw decision.error;
      case 'undo-interrupted':
        report = await undoInterrupted(device, recorder, journal, decision.pending);
        break;
      case 'commit':
        report = await finalizeWithCallbacks(device, recorder, decision.pending.target.name, () =>
          completeUpdate(device, recorder, journal, decision.pending, decision, options),
        );
        break;
      case 'rolled-back':
        report = await finalizeWithCallbacks(device, recorder, decision.failed.name, () =>
          finishBootloaderRollback(device, recorder, journal, decision.failed, decision.running),
        );
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
 * Writes a run's end as the planner decided it: in its journal step (if it names one), the reboot marker first
 * when the record makes a way back pending.
 */
async function recordEnd(
  device: Device,
  recorder: StatusRecorder,
  journal: Journal,
  end: RunEnd,
): Promise<CommandReport> {
  const { report, record } = end;
  const write = async () => {
    if (end.rebootMarkerFirst) await writeRebootSentinel(device);
    if (record.kind === 'finish') {
      await recorder.finish(
        {
          state: record.state,
          report,
          ...(record.target === undefined ? {} : { target: record.target }),
          ...(record.progress === undefined ? {} : { progress: record.progress }),
          ...(end.cause === undefined ? {} : { cause: end.cause }),
        },
        record.changes,
      );
    } else if (record.kind === 'note') {
      await recorder.note(
        { report, target: record.target, ...(end.cause === undefined ? {} : { cause: end.cause }) },
        { lastError: record.lastError },
      );
    }
  };
  if (end.step !== undefined) await journal.step(end.step, write);
  else await write();
  return report;
}

/** The engine must answer before any app is started or watched. */
async function ensureEngine(device: Device): Promise<void> {
  const probe = await device.engine.probe();
  if (!probe.reachable) throw engineUnavailable(probe.reason, probe.cause);
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
 * lost by the engine) are started again, as aktualizr-lite keeps the running target's apps in sync.
 */
async function restoreApps(
  device: Device,
  recorder: StatusRecorder,
  journal: Journal,
  current: TargetRef,
): Promise<CommandReport> {
  try {
    const elsewhere = restoreWanted(current, (await readBooted(device)).commit);
    if (elsewhere !== null) return recordEnd(device, recorder, journal, elsewhere);
    await ensureEngine(device);
    const checks: Record<string, AppsOutcome> = {};
    for (const [name, pin] of Object.entries(current.apps))
      checks[name] = await checkApps(device.engine, device.appStore, { [name]: pin }, new Date());
    const decision = restoreNeeded(current, checks);
    if (decision.action === 'end') return recordEnd(device, recorder, journal, decision.end);
    recorder.log(`the apps of "${current.name}" are not all running: ${decision.why}`);
    const restored = await switchApps(
      device.engine,
      device.appStore,
      {},
      decision.down,
      Math.min(device.config.testingWindowMs, RESTORE_WINDOW_MS),
    );
    return await recordEnd(
      device,
      recorder,
      journal,
      restoreEnd(current, Object.keys(decision.down), decision.why, restored),
    );
  } catch (error) {
    const report = errorReport(error);
    await recorder.note({ report, target: current.name, cause: error }, { lastError: true });
    return report;
  }
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
  await undoInterruptedInstall(device, journal, pending, (line) => recorder.log(line));
  const running = runningAfterUndo(pending, recorder.status.current);
  let started: AppsOutcome | null = null;
  if (running !== null && hasApps(running)) {
    await ensureEngine(device);
    started = await startApps(device.engine, device.appStore, {}, running.apps);
  }
  return recordEnd(device, recorder, journal, undoEnd(pending.target, running, started, new Date().toISOString()));
}

/** Booted on the pending target: start its apps, watch them through the testing window, then commit. */
async function completeUpdate(
  device: Device,
  recorder: StatusRecorder,
  journal: Journal,
  pending: PendingUpdate,
  decision: { readonly bootFirmwareUpdated: boolean; readonly apps: boolean },
  options: RunOptions,
): Promise<CommandReport> {
  const { target, previous } = pending;
  // The way back is not checked, and its apps need only run: the version it returns to passed all that before.
  const checked = pending.phase !== 'returning';
  if (decision.apps) {
    await ensureEngine(device);
    const boot = await currentBootId(device);
    const resumed = windowToResume(pending, boot);
    if (resumed.note !== undefined) recorder.log(resumed.note);
    let window: TestingWindow | null = resumed.window;
    if (window === null) {
      const started = await journal.step('run.apps-start', () =>
        startApps(device.engine, device.appStore, previous?.apps ?? {}, target.apps),
      );
      if (!started.ok) return await appsFailed(device, recorder, journal, pending, started);
      const since = new Date();
      window = {
        since: since.toISOString(),
        until: new Date(since.getTime() + device.config.testingWindowMs).toISOString(),
        boot,
      };
    }
    const testing = window;
    const until = new Date(testing.until);
    const secondsLeft = () => Math.max(0, Math.ceil((until.getTime() - Date.now()) / 1000));
    const phase = testingPhase(pending, testing, secondsLeft());
    await journal.step('run.testing-record', () =>
      recorder.phase(phase.state, phase.reason, phase.progress, phase.changes),
    );
    const next = afterWindowStart(pending, testing, options.noWait === true, secondsLeft());
    if (next.action === 'end') return recordEnd(device, recorder, journal, next.end);
    const testingProgress = testingWindowProgress(testing, target.name, options.progress);
    const watched = await journal.step('run.apps-watch', () =>
      watchApps(
        device.engine,
        device.appStore,
        target.apps,
        {
          since: new Date(testing.since),
          until,
          onGoals: (goals) => {
            testingProgress.goals(goals);
            recorder.goals({ target: target.name, at: new Date().toISOString(), apps: goals });
          },
          onTick: (left) => {
            testingProgress.left(left);
            return recorder.progress({ unit: 'seconds-left', value: left });
          },
          ...(checked ? { onGoalsReached: () => runHealthChecks(device, recorder, target, 'goals-reached') } : {}),
        },
        checked ? 'signed' : 'running',
      ),
    );
    if (!watched.ok) return await appsFailed(device, recorder, journal, pending, watched);
    testingProgress.passed();
  }
  // At the end of the window; an update without apps runs them once here, before it commits.
  if (checked) {
    const health = await runHealthChecks(device, recorder, target, 'window-end');
    if (!health.ok) return await appsFailed(device, recorder, journal, pending, health);
  }
  if (pending.rootfsChanged) {
    try {
      await journal.step('run.boot-trial-end', () => device.boot.endTrial());
    } catch (error) {
      throw bootTrialEndFailed(device.boot.description, describeCause(error), error);
    }
  }
  // The store keeps what runs now and what a rollback would go back to.
  const rollback = rollbackPointAfter(pending, recorder.status.rollback);
  await journal.step('run.apps-prune', () => device.appStore.prune([target.apps, rollback?.apps ?? {}]));
  return recordEnd(
    device,
    recorder,
    journal,
    commitEnd(pending, decision.bootFirmwareUpdated, rollback, recorder.status.failedTargets),
  );
}

/**
 * The device's health checks for `target` in `phase`: what they ran goes to the log, and a failure carries the
 * check's last lines for the log snippet.
 */
async function runHealthChecks(
  device: Device,
  recorder: StatusRecorder,
  target: TargetRef,
  phase: CheckPhase,
): Promise<AppsResult> {
  const result = await device.healthChecks.run(phase, target);
  for (const line of result.log) recorder.log(line);
  if (result.ok) return { ok: true, failures: [] };
  const output = result.output ?? [];
  return {
    ok: false,
    failures: [result.failure ?? 'status goal not reached: a health check failed'],
    detail:
      output.length === 0
        ? ['the health check wrote nothing']
        : ['the health check wrote, last lines:', ...output.map((line) => `  | ${line}`)],
  };
}

/**
 * The target's apps did not all keep running, did not reach their goals, or a health check failed: the planner
 * chooses the way back, and this carries it out. What explains it (a container's log, a check's output) goes into
 * the log snippet first.
 */
async function appsFailed(
  device: Device,
  recorder: StatusRecorder,
  journal: Journal,
  pending: PendingUpdate,
  result: AppsResult,
): Promise<CommandReport> {
  const { target } = pending;
  const { failures } = result;
  for (const line of result.detail ?? []) recorder.log(line);
  const at = new Date().toISOString();
  const status = recorder.status;
  const decision = planAppsFailed(status, pending, failures, at);
  switch (decision.action) {
    case 'end':
      if (decision.endTrialFirst) await device.boot.endTrial();
      return recordEnd(device, recorder, journal, decision.end);
    case 'return-to-previous-rootfs': {
      const { previous } = decision;
      let result: { ok: true } | { ok: false; reason: string; cause: unknown } = { ok: true };
      try {
        await journal.step('run.rollback-apps-stop', () => startApps(device.engine, device.appStore, target.apps, {}));
        await journal.step('run.rollback-deploy', () => device.sysroot.deploy(previous.commit), previous.commit);
        await journal.step('run.rollback-trial-end', () => device.boot.endTrial());
      } catch (error) {
        result = { ok: false, reason: describeCause(error), cause: error };
      }
      return recordEnd(device, recorder, journal, rootfsReturnEnd(status, pending, previous, failures, at, result));
    }
    case 'switch-to-previous-apps': {
      const { previous } = decision;
      const restore = await journal.step('run.rollback-apps-switch', () =>
        switchApps(
          device.engine,
          device.appStore,
          target.apps,
          previous.apps,
          Math.min(device.config.testingWindowMs, RESTORE_WINDOW_MS),
        ),
      );
      return recordEnd(device, recorder, journal, appsSwitchEnd(status, pending, previous, failures, at, restore));
    }
  }
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
  let restore: AppsOutcome | null = null;
  if (running !== null && hasApps(running)) {
    await ensureEngine(device);
    restore = await journal.step('run.fallback-apps-restore', () =>
      switchApps(
        device.engine,
        device.appStore,
        {},
        running.apps,
        Math.min(device.config.testingWindowMs, RESTORE_WINDOW_MS),
      ),
    );
  }
  return recordEnd(device, recorder, journal, fallbackEnd(recorder.status, failed, running, restore, at));
}

/**
 * The testing window as progress events: the seconds passed of its length, from the moment the window began (a
 * window resumed after `--no-wait` or a power cut starts part-way).
 */
function testingWindowProgress(
  window: { since: string; until: string },
  target: string,
  listener: ProgressListener | undefined,
): { left(seconds: number): void; passed(): void; goals(goals: GoalsReport): void } {
  const total = Math.max(0, Math.round((Date.parse(window.until) - Date.parse(window.since)) / 1000));
  let apps: GoalsReport | undefined;
  // Never backwards: an event of the goals between two ticks repeats the seconds of the last one (a resumed window
  // starts part-way).
  let passedSeconds = Math.max(0, Math.min(total, total - Math.ceil((Date.parse(window.until) - Date.now()) / 1000)));
  const report = (seconds: number) => {
    passedSeconds = Math.max(passedSeconds, seconds);
    listener?.({ phase: 'testing', seconds: passedSeconds, total, target, ...(apps === undefined ? {} : { apps }) });
  };
  return {
    left: (seconds) => report(Math.max(0, Math.min(total, total - seconds))),
    passed: () => report(total),
    goals: (goals) => {
      // A change of what an app reached is an event of its own; the same goals again wait for the next tick.
      const changed = JSON.stringify(goals) !== JSON.stringify(apps);
      apps = goals;
      if (changed) report(passedSeconds);
    },
  };
}
