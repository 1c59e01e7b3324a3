import { loadDeviceStatus } from './rebuild-status.js';
import { readBooted, rebootSentinelPresent, type Device } from '../device/device.js';
import { describeCause } from '../errors.js';
import { lockHolder } from '../device/lock.js';
import { loadTimeFloor } from '../device/time-floor-file.js';
import { formatExpires } from '../tuf/expires.js';
import { Journal } from './journal.js';
import { currentTargetOf } from './plan.js';
import type { CommandReport } from '../command-report.js';
import { promises as fs } from 'node:fs';
import { defaultStatusGoal, parseCompose } from '../apps/format/compose.js';
import type { DeviceStatus, TargetRef } from '../device/status-file.js';

/** One app of the current or pending target: its status goal and what it reached when `run` last looked. */
export interface AppGoalLine {
  readonly app: string;
  readonly target: string;
  /** The signed goal, else the one its compose file in the app store implies; null if neither can be read. */
  readonly goal: string | null;
  /** null: no testing window of this target has looked at it yet. */
  readonly reached: string | null;
  readonly at: string | null;
}

async function appGoalLines(device: Device, status: DeviceStatus): Promise<AppGoalLine[]> {
  const targets = [status.pending?.target, status.current].filter(
    (target, index, all): target is TargetRef =>
      target != null && all.findIndex((other) => other?.name === target.name) === index,
  );
  const lines: AppGoalLine[] = [];
  for (const target of targets) {
    for (const [app, pin] of Object.entries(target.apps)) {
      const seen = status.appGoals?.target === target.name ? status.appGoals.apps[app] : undefined;
      let goal: string | null = seen?.goal ?? pin.statusGoal ?? null;
      if (goal === null) {
        try {
          goal = defaultStatusGoal(
            parseCompose(await fs.readFile(device.appStore.apps.composeFile(app, pin.digest), 'utf8')).services,
          );
        } catch {
          // Not in the app store (yet): the goal is unknown until it is.
        }
      }
      lines.push({
        app,
        target: target.name,
        goal,
        reached: seen?.reached ?? null,
        at: seen === undefined ? null : status.appGoals!.at,
      });
    }
  }
  return lines;
}

/**
 * `status`: what the device boots, what is pending, the update state with its progress, and how the last update
 * ended. Reads only. The --json form is described by schemas/status.schema.json.
 */
export async function deviceStatus(device: Device): Promise<CommandReport> {
  const { status, recovered } = await loadDeviceStatus(device);
  let booted: { commit: string; target: string | null } | { error: string };
  try {
    const deployment = await readBooted(device);
    const target = currentTargetOf(status, deployment, []);
    booted = { commit: deployment.commit, target: target?.name ?? null };
  } catch (error) {
    booted = { error: describeCause(error) };
  }
  const rebootPending = status.pending !== null && (await rebootSentinelPresent(device));
  // A journal without its end line is a command still running (it holds the lock) or one that was cut off.
  const journal = await Journal.open(device.paths.journalFile, 'status');
  const interrupted =
    journal.interrupted !== null && (await lockHolder(device.paths.volatileDir))?.pid !== journal.interrupted.pid
      ? journal.interrupted
      : null;
  const floor = await loadTimeFloor(device.paths.timeFloorFile);
  const timeFloor = floor.floor === undefined ? null : formatExpires(floor.floor);
  const apps = await appGoalLines(device, status);
  const data = {
    state: status.state,
    reason: status.reason,
    progress: status.progress,
    log: status.log,
    inconsistent: status.inconsistent,
    booted,
    current: status.current,
    pending: status.pending,
    ...(interrupted ? { interrupted } : {}),
    rebootPending,
    rollback: status.rollback,
    failedTargets: status.failedTargets,
    lastError: status.lastError,
    history: status.history,
    timeFloor,
    lastMedia: status.lastMedia ?? null,
    apps,
    ...(recovered ? { recovered } : {}),
  };
  const bootedText =
    'error' in booted
      ? `unknown (${booted.error})`
      : `${booted.target ?? 'unknown target'} (${booted.commit.slice(0, 12)})`;
  const waitingFor =
    status.pending?.phase === 'deploying'
      ? 'run, which finishes or undoes its interrupted install'
      : rebootPending
        ? 'a reboot'
        : status.pending?.completion === 'restart-engine' && status.state !== 'TESTING'
          ? 'an engine restart and run'
          : 'run';
  const progress = status.progress
    ? ` (${status.progress.value}${status.progress.unit === 'percent' ? '%' : ' s left'})`
    : '';
  const lines = [
    `booted:  ${bootedText}`,
    `pending: ${status.pending ? `${status.pending.target.name} (version ${status.pending.target.version}), waiting for ${waitingFor}` : 'none'}`,
    `state:   ${status.state}${progress}: ${status.reason}`,
    ...(status.inconsistent ? [`INCONSISTENT: ${status.inconsistent.reason}`] : []),
    ...(interrupted ? [`interrupted: ${journal.describeInterrupted()}`] : []),
    ...apps.map(
      (line) =>
        `app ${line.app} (${line.target}): goal ${line.goal ?? 'unknown'}, reached ${line.reached ?? 'not looked at yet'}${line.at === null ? '' : ` (${line.at})`}`,
    ),
    `time floor: ${timeFloor ?? 'none'}${floor.recovered ? ` (${floor.recovered})` : ''}`,
    `last error: ${status.lastError ? `${status.lastError.message} (exit ${status.lastError.exitCode}, ${status.lastError.at})` : 'none'}`,
  ];
  return { outcome: 'OK', message: lines.join('\n'), data };
}
