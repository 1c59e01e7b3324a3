/**
 * Every step of `install` and `run` that changes the device, in the order they run. Each one is journaled (intent
 * before, result after) and is a fault-injection point: `FERRY_CRASH_AT=<step>` kills the process with SIGKILL once
 * the intent is recorded, `FERRY_CRASH_AT=<step>:done` once the step has acted but before its result is recorded.
 * The crash tests iterate over this table, so a step added here is a step the harness covers.
 */

/** Which kind of update takes a step: one with a new rootfs (and apps), or one that changes apps only. */
export type UpdateKind = 'rootfs' | 'apps';

/** The way a step is reached: a plain update, or one of the ways back. */
export type StepPath = 'update' | 'apps-rollback' | 'bootloader-rollback' | 'undo-interrupted';

export interface StepInfo {
  readonly command: 'install' | 'run';
  readonly path: StepPath;
  /** The kinds of update whose path takes this step. */
  readonly kinds: readonly UpdateKind[];
  readonly does: string;
}

const both: readonly UpdateKind[] = ['rootfs', 'apps'];
const rootfs: readonly UpdateKind[] = ['rootfs'];

export const STEPS = {
  'install.leftovers-remove': {
    command: 'install',
    path: 'update',
    kinds: both,
    does: 'removes what an interrupted command left behind: staging directories, temp files',
  },
  'install.apps-stage': {
    command: 'install',
    path: 'update',
    kinds: both,
    does: 'copies and verifies the apps the store lacks into a staging directory',
  },
  'install.rootfs-pull': {
    command: 'install',
    path: 'update',
    kinds: rootfs,
    does: 'pulls the target commit into the device repo (or applies its static delta), every object checked',
  },
  'install.apps-commit': {
    command: 'install',
    path: 'update',
    kinds: both,
    does: 'moves the staged apps into the app store',
  },
  'install.metadata-promote': {
    command: 'install',
    path: 'update',
    kinds: both,
    does: 'makes the verified TUF metadata the trusted set and raises the time floor to its signing time',
  },
  'install.pending-record': {
    command: 'install',
    path: 'update',
    kinds: both,
    does: 'records the update as pending (phase "deploying") before the boot state changes',
  },
  'install.reboot-sentinel': {
    command: 'install',
    path: 'update',
    kinds: rootfs,
    does: 'writes the volatile marker that says "this boot has not rebooted yet"',
  },
  'install.boot-trial-start': {
    command: 'install',
    path: 'update',
    kinds: rootfs,
    does: 'starts the boot trial (upgrade_available=1, bootcount=0) before the new deployment exists',
  },
  'install.rootfs-deploy': {
    command: 'install',
    path: 'update',
    kinds: rootfs,
    does: 'deploys the target commit: it becomes the default boot entry',
  },
  'install.pending-staged': {
    command: 'install',
    path: 'update',
    kinds: both,
    does: 'records the install as finished (phase "staged")',
  },
  'run.apps-start': {
    command: 'run',
    path: 'update',
    kinds: both,
    does: "starts the target's apps and stops the ones it dropped",
  },
  'run.testing-record': {
    command: 'run',
    path: 'update',
    kinds: both,
    does: 'records the testing window (state TESTING)',
  },
  'run.apps-watch': {
    command: 'run',
    path: 'update',
    kinds: both,
    does: 'watches the apps through the testing window',
  },
  'run.boot-trial-end': {
    command: 'run',
    path: 'update',
    kinds: rootfs,
    does: 'ends the boot trial: the new deployment is committed',
  },
  'run.apps-prune': {
    command: 'run',
    path: 'update',
    kinds: both,
    does: 'removes app versions that neither the target nor the rollback uses',
  },
  'run.commit-record': {
    command: 'run',
    path: 'update',
    kinds: both,
    does: 'records the update as done',
  },
  'run.rollback-apps-stop': {
    command: 'run',
    path: 'apps-rollback',
    kinds: rootfs,
    does: "stops the failed target's apps",
  },
  'run.rollback-deploy': {
    command: 'run',
    path: 'apps-rollback',
    kinds: rootfs,
    does: 'deploys the previous commit again: it becomes the default boot entry',
  },
  'run.rollback-trial-end': {
    command: 'run',
    path: 'apps-rollback',
    kinds: rootfs,
    does: 'ends the boot trial of the failed target',
  },
  'run.rollback-apps-switch': {
    command: 'run',
    path: 'apps-rollback',
    kinds: ['apps'],
    does: "stops the failed target's apps and starts the previous ones again, watching them",
  },
  'run.rollback-record': {
    command: 'run',
    path: 'apps-rollback',
    kinds: both,
    does: 'records the rollback: the way back pending a reboot, or the previous apps running again',
  },
  'run.fallback-bootcount-reset': {
    command: 'run',
    path: 'bootloader-rollback',
    kinds: rootfs,
    does: 'resets the boot counter, the trial still armed, so that no boot on the way back counts as failed',
  },
  'run.fallback-undeploy': {
    command: 'run',
    path: 'bootloader-rollback',
    kinds: rootfs,
    does: 'removes the deployment that did not boot',
  },
  'run.fallback-trial-end': {
    command: 'run',
    path: 'bootloader-rollback',
    kinds: rootfs,
    does: 'ends the boot trial',
  },
  'run.fallback-apps-restore': {
    command: 'run',
    path: 'bootloader-rollback',
    kinds: rootfs,
    does: 'starts the apps of the running target again',
  },
  'run.fallback-record': {
    command: 'run',
    path: 'bootloader-rollback',
    kinds: rootfs,
    does: 'records the rollback and the failed target',
  },
  'recover.undeploy': {
    command: 'run',
    path: 'undo-interrupted',
    kinds: rootfs,
    does: 'removes the deployment of an install that was interrupted before it finished',
  },
  'recover.trial-end': {
    command: 'run',
    path: 'undo-interrupted',
    kinds: rootfs,
    does: 'ends the boot trial of the interrupted install',
  },
  'recover.sentinel-remove': {
    command: 'run',
    path: 'undo-interrupted',
    kinds: rootfs,
    does: 'removes the reboot marker of the interrupted install',
  },
  'recover.record': {
    command: 'run',
    path: 'undo-interrupted',
    kinds: rootfs,
    does: 'records that the interrupted install was undone',
  },
} as const satisfies Record<string, StepInfo>;

export type StepName = keyof typeof STEPS;

export const STEP_NAMES = Object.keys(STEPS) as StepName[];

/** When within a step a fault fires: after its intent is recorded, or after it acted (before its result is). */
export type FaultMoment = 'intent' | 'done';

/** `<step>` or `<step>:done`: the names `FERRY_CRASH_AT` and `FERRY_PAUSE_AT` take. */
export function faultPointName(step: StepName, moment: FaultMoment): string {
  return moment === 'intent' ? step : `${step}:done`;
}
