import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { DevicePublicKey } from '../device/device-key.js';
import { FerryError, describeCause } from '../errors.js';
import { readSmallFile } from '../util/atomic-file.js';
import type { CertificateCheck } from './certificate-trust.js';
import { REPORT_MAX_BYTES, verifyReport, type ReportStep, type ReportTarget } from './signed-report.js';

/** One report found on a stick: what it says if its signature holds, and only why it was rejected if not. */
export type ReportRow =
  | {
      readonly file: string;
      readonly device: string;
      readonly valid: true;
      readonly step: ReportStep;
      readonly target: ReportTarget | null;
      readonly current: ReportTarget | null;
      readonly exitCode: number;
      readonly outcome: string;
      readonly state: string | null;
      readonly error: string | null;
      readonly at: string;
    }
  | { readonly file: string; readonly device: string; readonly valid: false; readonly reason: string };

/**
 * Reads `<media>/reports/<device>/*.json` and verifies each report against its device certificate (when it carries
 * one and `certificates` names the factory's device CA) or the registered key of its device.
 * The stick is not trusted: files are read with a size cap, and links or other special files are rejected unread.
 */
export async function readReports(
  media: string,
  keys: ReadonlyMap<string, DevicePublicKey>,
  certificates: CertificateCheck | null = null,
): Promise<ReportRow[]> {
  const root = path.resolve(media);
  try {
    if (!(await fs.stat(root)).isDirectory()) throw new Error('not a directory');
  } catch (error) {
    throw new FerryError('REPORTS_UNREADABLE', `cannot read the media ${root}: ${describeCause(error)}`, {
      cause: error,
    });
  }
  const reportsDir = path.join(root, 'reports');
  const devices = await listDir(reportsDir);
  const rows: ReportRow[] = [];
  for (const device of devices) {
    const deviceDir = path.join(reportsDir, device.name);
    if (!device.isDirectory()) continue;
    for (const entry of await listDir(deviceDir)) {
      if (!entry.name.endsWith('.json')) continue;
      const file = path.join(deviceDir, entry.name);
      rows.push(await readOne(file, device.name, entry.isFile(), keys, certificates));
    }
  }
  return rows.sort(
    (a, b) =>
      a.device.localeCompare(b.device) ||
      (a.valid && b.valid ? a.at.localeCompare(b.at) : 0) ||
      a.file.localeCompare(b.file),
  );
}

async function listDir(dir: string): Promise<import('node:fs').Dirent[]> {
  try {
    return (await fs.readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new FerryError('REPORTS_UNREADABLE', `cannot read ${dir}: ${describeCause(error)}`, { cause: error });
  }
}

async function readOne(
  file: string,
  device: string,
  regular: boolean,
  keys: ReadonlyMap<string, DevicePublicKey>,
  certificates: CertificateCheck | null,
): Promise<ReportRow> {
  if (!regular) return { file, device, valid: false, reason: 'not a regular file' };
  let bytes: Buffer;
  try {
    bytes = await readSmallFile(file, REPORT_MAX_BYTES);
  } catch (error) {
    return { file, device, valid: false, reason: `unreadable: ${describeCause(error)}` };
  }
  const verdict = verifyReport(bytes, device, (id) => keys.get(id), certificates);
  if (!verdict.valid) return { file, device, valid: false, reason: verdict.reason };
  const { step, target, current, exitCode, outcome, state, error, at } = verdict.report;
  return { file, device, valid: true, step, target, current, exitCode, outcome, state, error, at };
}

/** The rows as a table for people: device, step, target, result, when, signature. */
export function reportTable(rows: readonly ReportRow[]): string {
  const header = ['device', 'step', 'target', 'result', 'when', 'signature'];
  const cells = rows.map((row) =>
    row.valid
      ? [
          row.device,
          row.step,
          row.target ? `${row.target.name} (${row.target.version})` : '-',
          `${row.exitCode} ${row.outcome}`,
          row.at,
          'valid',
        ]
      : [row.device, '-', '-', '-', '-', `REJECTED: ${row.reason} (${row.file})`],
  );
  const widths = header.map((title, column) =>
    Math.max(title.length, ...cells.map((line) => (column === header.length - 1 ? 0 : line[column]!.length))),
  );
  return [header, ...cells]
    .map((line) =>
      line
        .map((cell, column) => (column === line.length - 1 ? cell : cell.padEnd(widths[column]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
