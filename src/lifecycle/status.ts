import { readBooted, rebootSentinelPresent, type Device } from '../device/device.js';
import { describeCause } from '../errors.js';
import { currentTargetOf } from './plan.js';
import type { CommandReport } from './report.js';

/** `status`: what the device boots, what is pending, and how the last update ended. Reads only. */
export async function deviceStatus(device: Device): Promise<CommandReport> {
  const { status, recovered } = await device.statusFile.load();
  let booted: { commit: string; target: string | null } | { error: string };
  try {
    const deployment = await readBooted(device);
    const target = currentTargetOf(status, deployment, []);
    booted = { commit: deployment.commit, target: target?.name ?? null };
  } catch (error) {
    booted = { error: describeCause(error) };
  }
  const data = {
    state: status.state,
    reason: status.reason,
    booted,
    current: status.current,
    pending: status.pending,
    rebootPending: status.pending !== null && (await rebootSentinelPresent(device)),
    rollback: status.rollback,
    failedTargets: status.failedTargets,
    lastError: status.lastError,
    history: status.history,
    ...(recovered ? { recovered } : {}),
  };
  const bootedText =
    'error' in booted
      ? `unknown (${booted.error})`
      : `${booted.target ?? 'unknown target'} (${booted.commit.slice(0, 12)})`;
  const lines = [
    `booted:  ${bootedText}`,
    `pending: ${status.pending ? `${status.pending.target.name} (version ${status.pending.target.version})${data.rebootPending ? ', waiting for a reboot' : ', waiting for run'}` : 'none'}`,
    `state:   ${status.state}: ${status.reason}`,
    `last error: ${status.lastError ? `${status.lastError.message} (exit ${status.lastError.exitCode}, ${status.lastError.at})` : 'none'}`,
  ];
  return { outcome: 'OK', message: lines.join('\n'), data };
}
