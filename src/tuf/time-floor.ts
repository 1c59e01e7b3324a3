import { FerryError } from '../errors.js';
import { formatExpires, parseExpires } from './expires.js';

/**
 * Clockless trust. A device without an RTC battery may read 1970 after a power cut, and then every expired bundle
 * would look valid. The device therefore keeps a time floor: the newest signing time it has verified. Expiry is
 * checked against whichever is later, the clock or the floor. The floor only ever comes from signed metadata, never
 * from the clock, so a clock that reads the far future cannot push it past every bundle's expiry for good.
 */
export interface EffectiveTime {
  /** The time expiry is checked against: the later of `clock` and `floor`. */
  readonly time: Date;
  readonly clock: Date;
  readonly floor: Date | undefined;
  /** True when the clock reads earlier than the floor, so the floor is what counts. */
  readonly fromFloor: boolean;
}

export function effectiveTime(clock: Date, floor: Date | undefined): EffectiveTime {
  const fromFloor = floor !== undefined && floor.getTime() > clock.getTime();
  return { time: fromFloor ? floor : clock, clock, floor, fromFloor };
}

/** A plain Date is a clock with no floor: callers without a device (export, verify) pass one. */
export function asEffectiveTime(now: Date | EffectiveTime): EffectiveTime {
  return now instanceof Date ? effectiveTime(now, undefined) : now;
}

/** The floor after an install goes ahead: never lower than before, raised to a later verified signing time. */
export function raiseFloor(floor: Date | undefined, signedAt: Date | undefined): Date | undefined {
  if (signedAt === undefined) return floor;
  if (floor === undefined || signedAt.getTime() > floor.getTime()) return signedAt;
  return floor;
}

/** Which time a check used, for a one-line reason. */
export function describeTime(time: EffectiveTime): string {
  const clock = formatExpires(time.clock);
  if (time.fromFloor) {
    return `time used: ${formatExpires(time.time)}; device clock ${clock} is behind the trusted time floor ${formatExpires(time.time)}`;
  }
  return `time used: the device clock ${clock}`;
}

/** Refuses metadata whose expiry has passed at the effective time (TUF: expired once now >= expires). */
export function assertNotExpired(file: string, expires: Date, time: EffectiveTime): void {
  if (time.time.getTime() >= expires.getTime()) {
    throw new FerryError('METADATA_EXPIRED', `${file} expired at ${formatExpires(expires)} (${describeTime(time)})`);
  }
}

/** The floor file holds one signing time, in TUF's date format, and a newline. */
export function formatTimeFloor(floor: Date): string {
  return `${formatExpires(floor)}\n`;
}

export function parseTimeFloor(text: string): Date | undefined {
  return parseExpires(text.endsWith('\n') ? text.slice(0, -1) : text);
}
