import { FerryError, describeCause } from '../errors.js';
import { exitCodeOf, type Outcome } from '../exit-codes.js';
import type { Device } from '../device/device.js';
import { appendHistory, type DeviceStatus, type UpdateState } from '../device/status-file.js';

/** What a command hands back to the entry point: an outcome from the one table, a line for people, data for --json. */
export interface CommandReport {
  readonly outcome: Outcome;
  readonly message: string;
  readonly data?: Record<string, unknown>;
}

export function errorReport(error: unknown): CommandReport {
  if (error instanceof FerryError)
    return { outcome: error.outcome, message: error.message, ...(error.detail ? { data: error.detail } : {}) };
  return { outcome: 'INTERNAL_ERROR', message: describeCause(error) };
}

/**
 * Records how a command ended in the status record: the state, its reason, and a history line. A refusal changes
 * nothing else on the device, so this is the only write a WONTGO makes.
 */
export async function recordOutcome(
  device: Device,
  status: DeviceStatus,
  entry: { command: string; state: UpdateState; report: CommandReport; target?: string },
  changes: Partial<Omit<DeviceStatus, 'schema' | 'history' | 'state' | 'reason'>> = {},
): Promise<DeviceStatus> {
  const at = new Date().toISOString();
  const exitCode = exitCodeOf(entry.report.outcome);
  const failed = entry.state === 'WONTGO' || entry.state === 'ERROR';
  const next: DeviceStatus = {
    ...status,
    ...changes,
    state: entry.state,
    reason: entry.report.message,
    lastError: failed
      ? { outcome: entry.report.outcome, exitCode, message: entry.report.message, at }
      : (changes.lastError ?? status.lastError),
    history: appendHistory(status, {
      at,
      command: entry.command,
      state: entry.state,
      outcome: entry.report.outcome,
      exitCode,
      ...(entry.target === undefined ? {} : { target: entry.target }),
      message: entry.report.message,
    }),
  };
  await device.statusFile.save(next);
  return next;
}
