import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describeCause } from '../errors.js';
import { readSmallFile, writeFileAtomic } from '../util/atomic-file.js';
import { formatTimeFloor, parseTimeFloor, raiseFloor } from '../tuf/time-floor.js';

/** One date and a newline; anything larger is not a floor ferry wrote. */
const FLOOR_MAX_BYTES = 64;

/**
 * The device's time floor (src/tuf/time-floor.ts), as stored. A floor that cannot be read is moved aside to
 * `.broken` and the device carries on without one: it only ever adds protection, so losing it must never make the
 * device refuse every bundle from then on.
 */
export async function loadTimeFloor(file: string): Promise<{ floor: Date | undefined; recovered?: string }> {
  let text: string | undefined;
  let why: string;
  try {
    text = (await readSmallFile(file, FLOOR_MAX_BYTES)).toString('utf8');
    why = `${JSON.stringify(text.slice(0, 40))} is not YYYY-MM-DDTHH:MM:SSZ`;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { floor: undefined };
    why = describeCause(error);
  }
  const floor = text === undefined ? undefined : parseTimeFloor(text);
  if (floor !== undefined) return { floor };
  const aside = `${file}.broken`;
  try {
    await fs.rm(aside, { recursive: true, force: true });
    await fs.rename(file, aside);
  } catch (error) {
    return {
      floor: undefined,
      recovered: `the time floor ${file} is unreadable (${why}) and could not be moved aside: ${describeCause(error)}`,
    };
  }
  return { floor: undefined, recovered: `the time floor was unreadable (${why}) and was moved to ${aside}` };
}

/**
 * Raises the stored floor to a verified signing time, if that is later; writes nothing otherwise. Returns the floor
 * now in force.
 */
export async function raiseTimeFloor(
  file: string,
  floor: Date | undefined,
  signedAt: Date | undefined,
): Promise<Date | undefined> {
  const raised = raiseFloor(floor, signedAt);
  if (raised === undefined || raised === floor) return floor;
  await fs.mkdir(path.dirname(file), { recursive: true });
  await writeFileAtomic(file, formatTimeFloor(raised));
  return raised;
}
