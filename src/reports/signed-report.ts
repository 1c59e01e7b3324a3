import { verify } from 'node:crypto';
import { canonicalize } from '@tufjs/canonical-json';
import { isDeviceId, type DevicePublicKey } from '../device/device-key.js';
import { keyFromCertificate, type CertificateCheck } from './certificate-trust.js';
import type { DeviceStatus, TargetRef } from '../device/status-file.js';
import { oneLine } from '../errors.js';
import { OUTCOMES } from '../exit-codes.js';
import type { CommandReport } from '../command-report.js';
import type { SigningKey } from '../tuf/keys.js';

/**
 * A report is what a device leaves on the stick after `install` or `run`, for the workstation to read back: an
 * offline fleet's only way to say how an update went. It is signed by the device key over its canonical JSON, the
 * way TUF signs metadata, because a stick passes through many hands and anything on it may be forged.
 *
 *   {"signed": {"_type": "ferry-report", "version": 1, "device": …, "step": "install"|"run", "target": {…}|null,
 *               "current": {…}|null, "exitCode": …, "outcome": …, "state": …|null, "error": …|null, "at": …},
 *    "signature": {"keyid": <TUF key id of the device key>, "sig": <ed25519, hex>},
 *    "certificate": <the device certificate, PEM>}      (only from a device the factory CA certified)
 *
 * The certificate is outside the signed part: the CA's signature vouches for it, and the report's signature must be
 * by the key it certifies.
 *
 * Pure: bytes in, verified objects out.
 */

export const REPORT_TYPE = 'ferry-report';
export const REPORT_STEPS = ['install', 'run'] as const;
export type ReportStep = (typeof REPORT_STEPS)[number];

/** A report file is small; anything bigger on a stick is not one. */
export const REPORT_MAX_BYTES = 64 * 1024;

export interface ReportTarget {
  readonly name: string;
  readonly version: string;
}

export interface SignedReport {
  readonly _type: typeof REPORT_TYPE;
  readonly version: 1;
  readonly device: string;
  readonly step: ReportStep;
  /** The target the step was about (installed, started, rolled back), if it got that far. */
  readonly target: ReportTarget | null;
  /** The target the device runs after the step, as its status record says. */
  readonly current: ReportTarget | null;
  readonly exitCode: number;
  readonly outcome: string;
  /** The update state after the step, from the status record. */
  readonly state: string | null;
  /** The one-line reason of a refusal or failure. */
  readonly error: string | null;
  readonly at: string;
}

export interface ReportEnvelope {
  readonly signed: SignedReport;
  readonly signature: { readonly keyid: string; readonly sig: string };
  readonly certificate?: string;
}

/** A device certificate is a few hundred bytes; the cap keeps a report small whatever a stick holds. */
const CERTIFICATE_MAX_CHARS = 8 * 1024;

/** `2024-05-01T12-00-00-000Z-install.json`: UTC, sortable, and without the colons a FAT stick refuses. */
export function reportFileName(at: Date, step: ReportStep, attempt = 0): string {
  const time = at.toISOString().replace(/:/g, '-').replace('.', '-');
  return `${time}-${step}${attempt === 0 ? '' : `-${attempt}`}.json`;
}

function targetOf(value: unknown): ReportTarget | null {
  const candidate = value as Partial<TargetRef> | null | undefined;
  return typeof candidate?.name === 'string' && typeof candidate.version === 'string'
    ? { name: candidate.name, version: candidate.version }
    : null;
}

/** Builds the signed part of a report from what the command returned and the status record it left. Pure. */
export function reportContent(
  deviceId: string,
  step: ReportStep,
  report: CommandReport,
  status: Partial<DeviceStatus>,
  at: Date,
): SignedReport {
  const info = OUTCOMES[report.outcome];
  const data = report.data ?? {};
  return {
    _type: 'ferry-report',
    version: 1,
    device: deviceId,
    step,
    // A refused install names no target of its own; a pending one would be the target that blocked it.
    target:
      targetOf(data['target']) ??
      targetOf(data['failed']) ??
      (step === 'run' ? targetOf(status.pending?.target) : null),
    current: targetOf(status.current),
    exitCode: info.exitCode,
    outcome: report.outcome,
    state: typeof status.state === 'string' ? status.state : null,
    error: info.kind === 'failure' ? oneLine(report.message) : null,
    at: at.toISOString(),
  };
}

/** Signs a report with the device key, carrying its certificate if it has one; returns the bytes of the file. */
export function signReport(signed: SignedReport, key: SigningKey, certificate: string | null = null): Buffer {
  const envelope: ReportEnvelope = {
    signed,
    signature: { keyid: key.keyId, sig: key.signHex(Buffer.from(canonicalize(signed), 'utf8')) },
    ...(certificate === null ? {} : { certificate }),
  };
  return Buffer.from(`${JSON.stringify(envelope, null, 2)}\n`, 'utf8');
}

export type ReportVerdict =
  { readonly valid: true; readonly report: SignedReport } | { readonly valid: false; readonly reason: string };

/**
 * Verifies one report file found under `reports/<dirDevice>/`. `registeredKey` looks up the key the workstation
 * registered for a device id (undefined: none). A report is trusted only if it parses, names the device its
 * directory names, and carries a valid signature by exactly the device's key: the key its certificate certifies
 * when the report carries one and the repository has a device CA (`certificates`; registration does not rescue a
 * certificate that fails), the registered key otherwise.
 */
export function verifyReport(
  bytes: Uint8Array,
  dirDevice: string,
  registeredKey: (id: string) => DevicePublicKey | undefined,
  certificates: CertificateCheck | null = null,
): ReportVerdict {
  if (bytes.length > REPORT_MAX_BYTES) return reject(`larger than ${REPORT_MAX_BYTES} bytes`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return reject('not JSON');
  }
  const shape = envelopeProblem(parsed);
  if (shape !== undefined) return reject(`not a report: ${shape}`);
  const { signed, signature, certificate } = parsed as ReportEnvelope;
  if (signed.device !== dirDevice)
    return reject(`filed under device "${dirDevice}" but names device "${signed.device}"`);
  let key: DevicePublicKey | undefined;
  if (certificate !== undefined && certificates !== null) {
    const verdict = keyFromCertificate(certificate, signed.device, new Date(signed.at), certificates);
    if ('reason' in verdict) return reject(verdict.reason);
    key = verdict.key;
    if (signature.keyid !== key.keyId)
      return reject(`signed by key ${signature.keyid}, not the key its certificate certifies`);
  } else {
    key = registeredKey(signed.device);
    if (key === undefined)
      return reject(
        `unknown device "${signed.device}": no key is registered for it${certificate === undefined ? '' : ' (it carries a certificate, but the repository has no device CA)'}`,
      );
    if (signature.keyid !== key.keyId)
      return reject(`signed by key ${signature.keyid}, not the device's registered key`);
  }
  let good = false;
  try {
    good = verify(null, Buffer.from(canonicalize(signed), 'utf8'), key.key, Buffer.from(signature.sig, 'hex'));
  } catch {
    good = false;
  }
  if (!good) return reject("bad signature: the report is not what the device's key signed");
  return { valid: true, report: signed };
}

function reject(reason: string): ReportVerdict {
  return { valid: false, reason };
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const isTargetOrNull = (value: unknown): boolean =>
  value === null ||
  (isObject(value) &&
    Object.keys(value).length === 2 &&
    typeof value['name'] === 'string' &&
    typeof value['version'] === 'string');

const stringOrNull = (value: unknown): boolean => value === null || typeof value === 'string';

const SIGNED_FIELDS: Record<keyof SignedReport, (value: unknown) => boolean> = {
  _type: (value) => value === REPORT_TYPE,
  version: (value) => value === 1,
  device: (value) => typeof value === 'string' && isDeviceId(value),
  step: (value) => (REPORT_STEPS as readonly unknown[]).includes(value),
  target: isTargetOrNull,
  current: isTargetOrNull,
  exitCode: (value) => Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 255,
  outcome: (value) => typeof value === 'string',
  state: stringOrNull,
  error: stringOrNull,
  at: (value) => typeof value === 'string' && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/.test(value),
};

/** What is wrong with the shape of a parsed report file, if anything. Unknown fields are refused, not ignored. */
function envelopeProblem(value: unknown): string | undefined {
  if (!isObject(value) || !isObject(value['signed']) || !isObject(value['signature']))
    return 'no "signed" and "signature" objects';
  const certificate = value['certificate'];
  if (Object.keys(value).length !== (certificate === undefined ? 2 : 3))
    return 'fields besides "signed", "signature" and "certificate"';
  if (
    certificate !== undefined &&
    (typeof certificate !== 'string' ||
      certificate.length > CERTIFICATE_MAX_CHARS ||
      !certificate.startsWith('-----BEGIN CERTIFICATE-----'))
  )
    return 'a malformed certificate';
  const signature = value['signature'];
  if (
    Object.keys(signature).length !== 2 ||
    typeof signature['keyid'] !== 'string' ||
    typeof signature['sig'] !== 'string' ||
    !/^[0-9a-f]{128}$/.test(signature['sig'])
  )
    return 'a malformed signature';
  const signed = value['signed'];
  for (const name of Object.keys(signed)) if (!Object.hasOwn(SIGNED_FIELDS, name)) return `an unknown field "${name}"`;
  for (const [name, valid] of Object.entries(SIGNED_FIELDS))
    if (!Object.hasOwn(signed, name) || !valid(signed[name])) return `a missing or malformed "${name}"`;
  return undefined;
}
