import { promises as fs } from 'node:fs';
import path from 'node:path';
import { loadDeviceCertificate } from '../device/device-certificate.js';
import { loadDeviceKey } from '../device/device-key.js';
import type { Device } from '../device/device.js';
import type { DeviceStatus } from '../device/status-file.js';
import { describeCause } from '../errors.js';
import type { CommandReport } from '../command-report.js';
import { pathExists, writeFileAtomic } from '../util/atomic-file.js';
import { reportContent, reportFileName, signReport, type ReportStep } from './signed-report.js';

/**
 * The device end of the reports: after `install` or `run` has decided and recorded everything, one signed report
 * goes to the stick. Nothing here may change the outcome: every failure (no key, no stick, a read-only stick)
 * comes back as a warning, and nothing is written to the device.
 */

/** One level at a time: a recursive mkdir on a read-only stick says ENOENT, where EROFS is the reason to show. */
async function mkdirOnce(dir: string): Promise<void> {
  try {
    await fs.mkdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
}

export type ReportWritten = { readonly path: string } | { readonly warning: string };

/** The status record as it is now, read without the recovery a lifecycle command does (which may move it aside). */
async function readStatus(device: Device): Promise<Partial<DeviceStatus>> {
  try {
    const parsed: unknown = JSON.parse(await fs.readFile(device.paths.statusFile, 'utf8'));
    return typeof parsed === 'object' && parsed !== null ? (parsed as Partial<DeviceStatus>) : {};
  } catch {
    return {};
  }
}

/** The media path the last install recorded, for `run`: after the reboot the stick may be where it was. */
export async function lastMediaOf(device: Device): Promise<string | null> {
  const media = (await readStatus(device)).lastMedia;
  return typeof media === 'string' ? media : null;
}

/** Writes the report of one step to `<media>/reports/<device-id>/`; returns where, or why it could not. */
export async function writeStepReport(
  device: Device,
  step: ReportStep,
  report: CommandReport,
  media: string | null,
  at: Date = new Date(),
): Promise<ReportWritten> {
  if (media === null) return { warning: 'cannot write the report: no install has recorded the media it came from' };
  let where = path.join(media, 'reports');
  try {
    const key = await loadDeviceKey(device.paths);
    if (key === null)
      return {
        warning: `cannot write the report to ${where}: the device has no key (ferry device provision makes one)`,
      };
    where = path.join(where, key.id);
    // The media must still be there: a stick that is gone must not become a directory on the device.
    if (!(await fs.stat(media)).isDirectory()) throw new Error(`${media} is not a directory`);
    const bytes = signReport(
      reportContent(key.id, step, report, await readStatus(device), at),
      key.signingKey,
      await loadDeviceCertificate(device.paths),
    );
    await mkdirOnce(path.dirname(where));
    await mkdirOnce(where);
    let file = path.join(where, reportFileName(at, step));
    for (let attempt = 1; await pathExists(file); attempt++) file = path.join(where, reportFileName(at, step, attempt));
    await writeFileAtomic(file, bytes);
    return { path: file };
  } catch (error) {
    return { warning: `cannot write the report to ${where}: ${describeCause(error)}` };
  }
}
