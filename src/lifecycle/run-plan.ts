import type { CommandReport } from '../command-report.js';
import { FerryError } from '../errors.js';
import type { BootFlags } from '../device/bootloader-env.js';
import {
  INSTALL_UNDER_WAY_STATES,
  type DeviceStatus,
  type PendingUpdate,
  type Progress,
  type TargetRef,
  type TestingWindow,
  type UpdateState,
} from '../device/status-file.js';
import type { BootedFacts } from './plan.js';
import type { StatusChanges } from './status-recorder.js';
import type { StepName } from './steps.js';

/**
 * The run planner: every way `run` can end is decided here, from facts and from the raw results of the steps `run`
 * carried out (did the apps start, did they keep running, did the way back work), as Mender's standalone mode hands
 * each state's result to one handler. Pure, with no I/O: `run` only executes the steps a decision names and brings
 * their results back, and every decision is tested as a table.
 */

/** The apps' start or watch, as `run` saw it: whether they all ran, and one line per app that did not. */
export interface AppsOutcome {
  readonly ok: boolean;
  readonly failures: readonly string[];
}

/** How a run ends: its report, how the status record takes it, and the journal step that writes it (if any). */
export interface RunEnd {
  readonly report: CommandReport;
  readonly record: RunRecord;
  /** The step the record is written in, when the crash tests cut there. */
  readonly step?: StepName;
  /** The error behind the outcome: its causes go into the log snippet. */
  readonly cause?: unknown;
  /** The reboot marker is written, in the same step, before the record names the way back as pending. */
  readonly rebootMarkerFirst?: boolean;
}

/**
 * none: nothing is written; finish: the update's state moves (with a history line); note: no update moved, only a
 * history line (and, with `lastError`, the last error) is written.
 */
export type RunRecord =
  | { readonly kind: 'none' }
  | {
      readonly kind: 'finish';
      readonly state: UpdateState;
      readonly target?: string;
      readonly progress?: Progress;
      readonly changes: StatusChanges;
    }
  | { readonly kind: 'note'; readonly target: string; readonly lastError: boolean };

export interface RunFacts {
  readonly status: DeviceStatus;
  readonly rebootSentinelPresent: boolean;
  /** Not read (null) while the sentinel is present: the boot entries changed since this boot began. */
  readonly booted: BootedFacts | null;
  readonly flags: BootFlags;
  /** The commit of the default boot entry (deployment 0), or null if there is none. */
  readonly defaultCommit: string | null;
  /** The last run stopped (power cut, kill) while it finished a fallback of the bootloader, as its journal says. */
  readonly fallbackInterrupted?: boolean;
}

export type RunDecision =
  /** Nothing to do: the run ends here. */
  | { readonly action: 'nothing-pending'; readonly end: RunEnd }
  /** Nothing pending, and the current target has apps: `run` looks whether they all run (restoreNeeded). */
  | { readonly action: 'restore-apps'; readonly target: TargetRef }
  /** The last install stopped before it recorded anything pending: nothing of it is in use. */
  | { readonly action: 'install-stopped-early'; readonly end: RunEnd }
  | { readonly action: 'reboot-first'; readonly target: TargetRef; readonly end: RunEnd }
  | {
      readonly action: 'commit';
      readonly pending: PendingUpdate;
      readonly target: TargetRef;
      readonly previous: TargetRef | null;
      readonly bootFirmwareUpdated: boolean;
      /** The target or the one before it has apps: they are started and watched through the testing window. */
      readonly apps: boolean;
    }
  | { readonly action: 'rolled-back'; readonly failed: TargetRef; readonly running: TargetRef | null }
  /** The install stopped before it finished (phase "deploying") and the device never ran its target: undo it. */
  | {
      readonly action: 'undo-interrupted';
      readonly pending: PendingUpdate;
      readonly target: TargetRef;
      readonly running: TargetRef | null;
    }
  | { readonly action: 'refuse'; readonly error: FerryError };

const NOTHING_WRITTEN: RunRecord = { kind: 'none' };

const NOTHING_PENDING: CommandReport = { outcome: 'NOTHING_PENDING', message: 'no update is pending; nothing to do' };

export function hasApps(...targets: Array<TargetRef | null>): boolean {
  return targets.some((target) => target !== null && Object.keys(target.apps).length > 0);
}

/** The same target: same name, rootfs and app versions. */
export function sameTarget(a: TargetRef, b: TargetRef): boolean {
  const digests = (target: TargetRef) =>
    JSON.stringify(
      Object.entries(target.apps)
        .map(([name, pin]) => [name, pin.digest])
        .sort(),
    );
  return a.name === b.name && a.commit === b.commit && digests(a) === digests(b);
}

/** A target ferry can name: an install on a device it knew nothing of records the previous one as "unknown". */
export function isKnown(target: TargetRef | null): target is TargetRef {
  return target !== null && target.name !== 'unknown';
}

export type IdleRunDecision = Extract<
  RunDecision,
  { action: 'nothing-pending' } | { action: 'restore-apps' } | { action: 'install-stopped-early' }
>;

/**
 * With no update pending, what the record alone decides (no boot facts are read): an install that stopped while it
 * verified or copied (32), the current target's apps looked at, or nothing.
 */
export function planIdleRun(status: DeviceStatus): IdleRunDecision {
  if (INSTALL_UNDER_WAY_STATES.has(status.state)) {
    // The install stopped before it recorded anything pending: nothing it copied is in use, and the next install
    // clears what it left.
    const report: CommandReport = {
      outcome: 'INSTALL_INTERRUPTED',
      message: `the last install stopped while ${status.state} (power cut or kill), before anything of it was in use: install again`,
    };
    return {
      action: 'install-stopped-early',
      end: { report, record: { kind: 'finish', state: 'WONTGO', changes: {} } },
    };
  }
  const current = status.current;
  if (current !== null && hasApps(current)) return { action: 'restore-apps', target: current };
  return { action: 'nothing-pending', end: { report: NOTHING_PENDING, record: NOTHING_WRITTEN } };
}

/**
 * What `run` does first. Without a pending update: an install that stopped while it verified or copied (32), the
 * current apps looked at, or nothing. With one, a record still in phase "deploying" belongs to an install that
 * stopped (power cut, kill) before it finished; its boot trial, reboot marker and deployment may each be written or
 * not, and what the device booted decides:
 * - still the boot the install ran in (the marker is there): the target never ran: undo it;
 * - booted the target: the deployment was whole and it booted, so the update goes on as if staged;
 * - booted the previous one while the target is the default and a trial runs: the bootloader fell back;
 * - booted the previous one after a run that was cut while it finished such a fallback: the same fallback, though
 *   its deployment may be gone by now (a power cut once the run removed it);
 * - booted the previous one otherwise: the deployment never became the default: undo it.
 */
export function planRun(input: RunFacts): RunDecision {
  const { status, booted, flags } = input;
  const pending = status.pending;
  if (pending === null) return planIdleRun(status);
  const interrupted = pending.phase === 'deploying';
  const undo = { action: 'undo-interrupted', pending, target: pending.target, running: pending.previous } as const;
  // The sentinel lives in a tmpfs: while it is there, this is still the boot in which install ran. Reading the
  // booted deployment now would mistake "not rebooted yet" for "rolled back".
  if (input.rebootSentinelPresent) {
    if (interrupted) return undo;
    // Nothing is written: the operator only has to reboot.
    const report: CommandReport = {
      outcome: 'REBOOT_NOT_DONE_YET',
      message: `target "${pending.target.name}" is installed but the device has not rebooted yet: reboot, then run \`run\``,
    };
    return { action: 'reboot-first', target: pending.target, end: { report, record: NOTHING_WRITTEN } };
  }
  if (booted === null) {
    return { action: 'refuse', error: new FerryError('DEVICE_STATE_UNREADABLE', 'the booted deployment is unknown') };
  }
  if (booted.commit === pending.target.commit) {
    return {
      action: 'commit',
      pending,
      target: pending.target,
      previous: pending.previous,
      bootFirmwareUpdated: flags.bootUpgradeAvailable,
      apps: hasApps(pending.target, pending.previous),
    };
  }
  if (pending.previous !== null && booted.commit === pending.previous.commit) {
    const fellBack =
      !interrupted ||
      input.fallbackInterrupted === true ||
      (pending.rootfsChanged && input.defaultCommit === pending.target.commit && flags.upgradeAvailable);
    return fellBack ? { action: 'rolled-back', failed: pending.target, running: pending.previous } : undo;
  }
  return {
    action: 'refuse',
    error: new FerryError(
      'DEVICE_STATE_UNREADABLE',
      `booted commit ${booted.commit} is neither the pending target "${pending.target.name}" nor the previous one`,
    ),
  };
}

/** The container engine cannot be reached: `run` cannot start or watch any app (5). */
export function engineUnavailable(reason: string, cause: unknown): FerryError {
  return new FerryError('ENGINE_UNAVAILABLE', reason, { cause });
}

/** Ending the boot trial failed: the bootloader env cannot be written, so the device state is not known (4). */
export function bootTrialEndFailed(description: string, reason: string, cause: unknown): FerryError {
  return new FerryError('DEVICE_STATE_UNREADABLE', `cannot end the boot trial in the ${description}: ${reason}`, {
    cause,
  });
}

// ── nothing pending: the current target's apps ──────────────────────────────────────────────────────────────────

export type RestoreDecision =
  | { readonly action: 'end'; readonly end: RunEnd }
  /** These apps of the current target are not running: `run` starts them again and watches them briefly. */
  | {
      readonly action: 'restart';
      readonly down: Readonly<Record<string, TargetRef['apps'][string]>>;
      readonly why: string;
    };

/** Only the target whose rootfs runs is acted on: a record naming another one is not (null: look at its apps). */
export function restoreWanted(current: TargetRef, bootedCommit: string): RunEnd | null {
  return bootedCommit === current.commit ? null : { report: NOTHING_PENDING, record: NOTHING_WRITTEN };
}

/** Each app of the current target as `run` found it (`checks`): those not running are started again. */
export function restoreNeeded(current: TargetRef, checks: Readonly<Record<string, AppsOutcome>>): RestoreDecision {
  const names = Object.keys(current.apps).filter((name) => checks[name] !== undefined && !checks[name]!.ok);
  if (names.length === 0) {
    return {
      action: 'end',
      end: {
        report: { ...NOTHING_PENDING, message: `no update is pending; the apps of "${current.name}" run` },
        record: NOTHING_WRITTEN,
      },
    };
  }
  return {
    action: 'restart',
    down: Object.fromEntries(names.map((name) => [name, current.apps[name]!])),
    why: names.flatMap((name) => checks[name]!.failures).join('; '),
  };
}

/** This is no update: the state stays, and a history line (with the last error when they fail) says what was done. */
export function restoreEnd(current: TargetRef, names: readonly string[], why: string, restored: AppsOutcome): RunEnd {
  const report: CommandReport = restored.ok
    ? {
        outcome: 'APPS_RESTORED',
        message: `no update is pending; the apps of "${current.name}" that were not running were started again: ${names.join(', ')}`,
        data: { target: current, restored: names },
      }
    : {
        outcome: 'APPS_RESTORE_FAILED',
        message: `no update is pending, but the apps of "${current.name}" were not running (${why}) and did not start again: ${restored.failures.join('; ')}`,
        data: { target: current },
      };
  return { report, record: { kind: 'note', target: current.name, lastError: !restored.ok } };
}

// ── an install that stopped before it finished ──────────────────────────────────────────────────────────────────

/** Who runs once the undo is done: the previous target if ferry knows it, else the one the record names current. */
export function runningAfterUndo(pending: PendingUpdate, current: TargetRef | null): TargetRef | null {
  return isKnown(pending.previous) ? pending.previous : current;
}

/** After the undo, the apps that ran before were started again (`started`, null when there were none). */
export function undoEnd(target: TargetRef, running: TargetRef | null, started: AppsOutcome | null, at: string): RunEnd {
  if (started !== null && !started.ok && running !== null) {
    const report: CommandReport = {
      outcome: 'APPS_ROLLBACK_FAILED',
      message: `the install of "${target.name}" was interrupted and undone, but the apps of "${running.name}" did not start: ${started.failures.join('; ')}`,
    };
    return {
      report,
      step: 'recover.record',
      record: {
        kind: 'finish',
        state: 'ERROR',
        target: target.name,
        changes: { pending: null, current: running, inconsistent: { reason: report.message, at, target: running } },
      },
    };
  }
  const report: CommandReport = {
    outcome: 'INSTALL_INTERRUPTED',
    message: `the install of "${target.name}" stopped before it finished; it was undone and the device runs ${running === null ? 'what it ran before' : `"${running.name}"`}: install again`,
    data: { target, running },
  };
  return {
    report,
    step: 'recover.record',
    record: { kind: 'finish', state: 'ERROR', target: target.name, changes: { pending: null, current: running } },
  };
}

// ── booted on the pending target: the testing window, then the commit ──────────────────────────────────────────

/**
 * The window to resume, if any: one begun in an earlier boot is dropped, since a power cut restarted the apps and
 * what the window saw before says nothing about them now.
 */
export function windowToResume(pending: PendingUpdate, boot: string): { window: TestingWindow | null; note?: string } {
  const window = pending.phase === 'testing' || pending.phase === 'returning' ? pending.window : null;
  if (window === null) return { window: null };
  if (window.boot !== null && window.boot !== boot) {
    return {
      window: null,
      note: `the testing window that began at ${window.since} was cut by a reboot; it starts again`,
    };
  }
  return { window };
}

/** The pending update once its apps are in their testing window. */
export function inTesting(pending: PendingUpdate, window: TestingWindow): PendingUpdate {
  if (pending.phase === 'returning') return { ...pending, window };
  if (pending.phase === 'deploying' || pending.phase === 'staged' || pending.phase === 'testing') {
    const { target, previous, installedAt, completion, rootfsChanged, repair } = pending;
    return { phase: 'testing', target, previous, installedAt, completion, rootfsChanged, repair, window };
  }
  return pending;
}

/** The record while the apps are in their testing window: state TESTING with the seconds left. */
export function testingPhase(
  pending: PendingUpdate,
  window: TestingWindow,
  secondsLeft: number,
): { state: UpdateState; reason: string; progress: Progress; changes: StatusChanges } {
  return {
    state: 'TESTING',
    reason:
      pending.phase === 'returning'
        ? `the apps of "${pending.target.name}" must keep running until ${window.until}`
        : `the apps of "${pending.target.name}" must keep running and reach their status goals, and the health checks pass, until ${window.until}`,
    progress: { unit: 'seconds-left', value: secondsLeft },
    changes: { pending: inTesting(pending, window) },
  };
}

/** With --no-wait, the run ends once the apps are up and the window still runs (105); otherwise it is watched. */
export function afterWindowStart(
  pending: PendingUpdate,
  window: TestingWindow,
  noWait: boolean,
  secondsLeft: number,
): { readonly action: 'watch' } | { readonly action: 'end'; readonly end: RunEnd } {
  if (!noWait || secondsLeft <= 0) return { action: 'watch' };
  const { target } = pending;
  const report: CommandReport = {
    outcome: 'TESTING',
    message: `the apps of "${target.name}" are up; run again after ${window.until} to commit the update`,
    data: { target, testingUntil: window.until },
  };
  return {
    action: 'end',
    end: {
      report,
      record: {
        kind: 'finish',
        state: 'TESTING',
        target: target.name,
        progress: { unit: 'seconds-left', value: secondsLeft },
        changes: { pending: inTesting(pending, window) },
      },
    },
  };
}

/** What the app store keeps besides the target: the rollback point a reboot moves, or the one that stays. */
export function rollbackPointAfter(pending: PendingUpdate, rollback: TargetRef | null): TargetRef | null {
  return pending.completion === 'reboot' ? pending.previous : rollback;
}

/**
 * The apps kept running (or there were none) and the boot trial ended: the update is committed (0, 90), or, on the
 * way back, the previous target runs again (99).
 */
export function commitEnd(
  pending: PendingUpdate,
  bootFirmwareUpdated: boolean,
  rollback: TargetRef | null,
  failedTargets: DeviceStatus['failedTargets'] = [],
): RunEnd {
  const { target } = pending;
  if (pending.phase === 'returning') {
    // The run before the reboot recorded why the target failed; this end is what a person reads last, so it says it.
    const { from } = pending;
    const recorded = [...failedTargets].reverse().find((failed) => failed.target.name === from.name)?.reason;
    const why = recorded === undefined ? '' : ` (${recorded.replace(/^apps failed: /, '')})`;
    const report: CommandReport = {
      outcome: 'APPS_ROLLED_BACK',
      message: `rolled back to "${target.name}" after "${from.name}" failed${why}; its apps run again`,
      data: { target, failed: pending.from },
    };
    return {
      report,
      step: 'run.commit-record',
      record: {
        kind: 'finish',
        state: 'ERROR',
        target: target.name,
        changes: { current: target, pending: null, inconsistent: null },
      },
    };
  }
  const done = `update to "${target.name}" (version ${target.version}) succeeded`;
  const report: CommandReport = bootFirmwareUpdated
    ? {
        outcome: 'UPDATE_SUCCEEDED_BOOT_FIRMWARE',
        message: `${done}; the boot firmware was updated too: an optional reboot confirms it`,
        data: { target },
      }
    : { outcome: 'UPDATE_SUCCEEDED', message: done, data: { target } };
  return {
    report,
    step: 'run.commit-record',
    record: {
      kind: 'finish',
      // DONE moves the rollback point (a reboot happened); UPDATED, with no reboot, leaves it where it was.
      state: pending.completion === 'reboot' ? 'DONE' : 'UPDATED',
      target: target.name,
      changes: { current: target, rollback, pending: null, inconsistent: null, lastError: null },
    },
  };
}

// ── the apps failed: the way back ───────────────────────────────────────────────────────────────────────────────

export type AppsFailedDecision =
  | { readonly action: 'end'; readonly end: RunEnd; readonly endTrialFirst: boolean }
  /** The previous deployment is made the default again; rootfsReturnEnd says how that ended. */
  | { readonly action: 'return-to-previous-rootfs'; readonly previous: TargetRef }
  /** Same rootfs: the previous apps are started again at once; appsSwitchEnd says how that ended. */
  | { readonly action: 'switch-to-previous-apps'; readonly previous: TargetRef };

function failedTargetsWith(status: DeviceStatus, target: TargetRef, at: string, why: string) {
  return [...status.failedTargets, { target, at, reason: `apps failed: ${why}` }];
}

/**
 * The target's apps did not all keep running. With the same rootfs, the previous apps are started again right away.
 * On a new rootfs, the previous deployment is made the default again and the way back completes after a reboot.
 * When even that fails, or there is nothing to go back to, the device is INCONSISTENT.
 */
export function planAppsFailed(
  status: DeviceStatus,
  pending: PendingUpdate,
  failures: readonly string[],
  at: string,
): AppsFailedDecision {
  const { target, previous } = pending;
  const why = failures.join('; ');
  const failed = (report: CommandReport, changes: StatusChanges, endTrialFirst = false): AppsFailedDecision => ({
    action: 'end',
    endTrialFirst,
    end: {
      report,
      record: {
        kind: 'finish',
        state: 'ERROR',
        target: target.name,
        changes: { ...changes, inconsistent: { reason: report.message, at, target: target } },
      },
    },
  });
  if (pending.phase === 'returning') {
    return failed(
      {
        outcome: 'APPS_ROLLBACK_FAILED',
        message: `rolled back to "${target.name}", but its apps did not start: ${why}`,
      },
      { pending: null, current: target },
    );
  }
  if (previous !== null && sameTarget(previous, target)) {
    // A sync (or repair) of the target the device runs: there is no other version to go back to, and the running
    // target is not recorded as failed, so that installing it again stays allowed.
    return failed(
      {
        outcome: 'APPS_FAILED_NO_ROLLBACK',
        message: `the apps of "${target.name}", the target the device runs, did not start: ${why}`,
      },
      { pending: null, current: target },
    );
  }
  if (!isKnown(previous)) {
    // Nothing to fall back to: the boot trial ends, so that no later reboot falls back to an unknown deployment.
    return failed(
      {
        outcome: 'APPS_FAILED_NO_ROLLBACK',
        message: `"${target.name}" failed and there is no known version to roll back to: ${why}`,
      },
      { pending: null, current: target, failedTargets: failedTargetsWith(status, target, at, why) },
      pending.rootfsChanged,
    );
  }
  return pending.rootfsChanged
    ? { action: 'return-to-previous-rootfs', previous }
    : { action: 'switch-to-previous-apps', previous };
}

/** The previous deployment is the default again (100, reboot to complete the way back), or that failed (110). */
export function rootfsReturnEnd(
  status: DeviceStatus,
  pending: PendingUpdate,
  previous: TargetRef,
  failures: readonly string[],
  at: string,
  result: { readonly ok: true } | { readonly ok: false; readonly reason: string; readonly cause: unknown },
): RunEnd {
  const { target } = pending;
  const why = failures.join('; ');
  const failedTargets = failedTargetsWith(status, target, at, why);
  if (!result.ok) {
    const report: CommandReport = {
      outcome: 'APPS_ROLLBACK_FAILED',
      message: `"${target.name}" failed (${why}), and making "${previous.name}" the default again failed: ${result.reason}`,
    };
    return {
      report,
      cause: result.cause,
      record: {
        kind: 'finish',
        state: 'ERROR',
        target: target.name,
        changes: {
          pending: null,
          current: target,
          failedTargets,
          inconsistent: { reason: report.message, at, target },
        },
      },
    };
  }
  const report: CommandReport = {
    outcome: 'APPS_FAILED_REBOOT_TO_ROLLBACK',
    message: `"${target.name}" failed on its new rootfs (${why}); "${previous.name}" is the default again: reboot, then run \`run\``,
    data: { failed: target, next: previous },
  };
  return {
    report,
    step: 'run.rollback-record',
    // The marker before the record: once the record names the previous target as pending, the boot that runs now
    // (the failed target's) must not be read as a rollback.
    rebootMarkerFirst: true,
    record: {
      kind: 'finish',
      state: 'ERROR',
      target: target.name,
      changes: {
        failedTargets,
        pending: {
          phase: 'returning',
          target: previous,
          previous: target,
          from: target,
          installedAt: at,
          completion: 'reboot',
          rootfsChanged: true,
          window: null,
        },
      },
    },
  };
}

/** The previous apps run again (99), or they did not start (110). */
export function appsSwitchEnd(
  status: DeviceStatus,
  pending: PendingUpdate,
  previous: TargetRef,
  failures: readonly string[],
  at: string,
  restore: AppsOutcome,
): RunEnd {
  const { target } = pending;
  const why = failures.join('; ');
  const failedTargets = failedTargetsWith(status, target, at, why);
  if (restore.ok) {
    return {
      report: {
        outcome: 'APPS_ROLLED_BACK',
        message: `"${target.name}" failed (${why}); the apps of "${previous.name}" run again`,
        data: { failed: target, running: previous },
      },
      step: 'run.rollback-record',
      record: {
        kind: 'finish',
        state: 'ERROR',
        target: target.name,
        changes: { pending: null, current: previous, failedTargets },
      },
    };
  }
  const report: CommandReport = {
    outcome: 'APPS_ROLLBACK_FAILED',
    message: `"${target.name}" failed (${why}), and the apps of "${previous.name}" did not start again: ${restore.failures.join('; ')}`,
    data: { failed: target },
  };
  return {
    report,
    record: {
      kind: 'finish',
      state: 'ERROR',
      target: target.name,
      changes: {
        pending: null,
        current: previous,
        failedTargets,
        inconsistent: { reason: report.message, at, target: previous },
      },
    },
  };
}

// ── the bootloader fell back ────────────────────────────────────────────────────────────────────────────────────

/**
 * The failed deployment is gone and the trial ended; the previous apps were started again (`restore`, null when it
 * had none). The target is remembered as failed (99), or, when the apps did not start, the device is INCONSISTENT
 * (110).
 */
export function fallbackEnd(
  status: DeviceStatus,
  failed: TargetRef,
  running: TargetRef | null,
  restore: AppsOutcome | null,
  at: string,
): RunEnd {
  const failedTargets = [
    ...status.failedTargets,
    { target: failed, at, reason: 'the new rootfs did not boot; the bootloader rolled back' },
  ];
  const rolledBack = `target "${failed.name}" did not boot; the bootloader rolled back to "${running?.name ?? 'the previous deployment'}"; "${failed.name}" is recorded as failed`;
  if (restore !== null && !restore.ok && running !== null) {
    const report: CommandReport = {
      outcome: 'APPS_ROLLBACK_FAILED',
      message: `${rolledBack}; but its apps did not start: ${restore.failures.join('; ')}`,
      data: { failed, running },
    };
    return {
      report,
      record: {
        kind: 'finish',
        state: 'ERROR',
        target: failed.name,
        changes: {
          pending: null,
          current: running,
          failedTargets,
          inconsistent: { reason: report.message, at, target: running },
        },
      },
    };
  }
  return {
    report: { outcome: 'ROLLED_BACK', message: rolledBack, data: { failed, running } },
    step: 'run.fallback-record',
    record: {
      kind: 'finish',
      state: 'ERROR',
      target: failed.name,
      changes: { pending: null, current: running ?? status.current, failedTargets },
    },
  };
}
