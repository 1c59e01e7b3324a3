import type { CommandReport } from '../command-report.js';
import type { CallbackEvent } from '../device/callback-program.js';
import type { Device } from '../device/device.js';
import { describeCause } from '../errors.js';
import { OUTCOMES, type Outcome } from '../exit-codes.js';
import type { StatusRecorder } from './status-recorder.js';

/**
 * Tells the callback program of one step of an update. CURRENT_TARGET_NAME is the target the status record says the
 * device runs at that moment. A callback that failed becomes a warning in the record's log (the program's adapter has
 * already said so on stderr); the update goes on either way.
 */
export async function callBack(
  device: Device,
  recorder: StatusRecorder,
  event: CallbackEvent,
  installTargetName: string | null,
  result?: string,
): Promise<void> {
  const problem = await device.callback.call({
    event,
    currentTargetName: recorder.status.current?.name ?? null,
    installTargetName,
    ...(result === undefined ? {} : { result }),
  });
  if (problem !== undefined) await recorder.warn(problem);
}

/** aktualizr-lite's RESULT for a step that failed, with its reason. */
export function failedResult(reasonOrError: unknown): string {
  return `FAILED: ${typeof reasonOrError === 'string' ? reasonOrError : describeCause(reasonOrError)}`;
}

/**
 * The RESULT of install-final-post for how a finalizing `run` ended: OK when the update is committed, FAILED with the
 * reason when it failed or rolled back, and undefined while it is not decided yet (the testing window still runs
 * after `run --no-wait`, or a reboot must come first): then install-final-post is not called.
 */
export function finalResult(report: CommandReport): string | undefined {
  if (COMMITTED.has(report.outcome)) return 'OK';
  if (OUTCOMES[report.outcome].kind === 'failure') return failedResult(report.message);
  return undefined;
}

/** The ends of a `run` that committed its update. */
const COMMITTED: ReadonlySet<Outcome> = new Set(['UPDATE_SUCCEEDED', 'UPDATE_SUCCEEDED_BOOT_FIRMWARE']);

/**
 * A `run` that finalizes a pending update (commits it, or rolls it back): install-final-pre before, and
 * install-final-post with how it ended, once that is decided.
 */
export async function finalizeWithCallbacks(
  device: Device,
  recorder: StatusRecorder,
  targetName: string,
  finalize: () => Promise<CommandReport>,
): Promise<CommandReport> {
  await callBack(device, recorder, 'install-final-pre', targetName);
  let report: CommandReport;
  try {
    report = await finalize();
  } catch (error) {
    await callBack(device, recorder, 'install-final-post', targetName, failedResult(error));
    throw error;
  }
  const result = finalResult(report);
  if (result !== undefined) await callBack(device, recorder, 'install-final-post', targetName, result);
  return report;
}
