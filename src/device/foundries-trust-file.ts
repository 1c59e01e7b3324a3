import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describeCause } from '../errors.js';
import type { FoundriesRoleVersions, FoundriesTrustedState } from '../tuf/foundries/fio-metadata-store.js';
import { METADATA_MAX_BYTES } from '../tuf/verify-metadata.js';
import { readSmallFile, writeFileAtomic } from '../util/atomic-file.js';

/**
 * The device's trusted state of the Foundries (fioctl) format, kept apart from the ferry format's trusted metadata so
 * that neither format's walk can move the other's trust: `root.json`, the bytes of the newest trusted root, and
 * `versions.json`, the role versions last accepted (absent until an install from a stick of this format went ahead).
 * A file that cannot be read is moved aside to `.broken`, never trusted and never deleted, as the status record is.
 */
export const FOUNDRIES_ROOT_FILE = 'root.json';
export const FOUNDRIES_VERSIONS_FILE = 'versions.json';
/**
 * The targets.json last accepted, as the stick had it: what the device knows of its targets when its status record
 * must be rebuilt (the ferry format keeps its whole trusted metadata for the same reason).
 */
export const FOUNDRIES_TARGETS_FILE = 'targets.json';

/** versions.json holds three small numbers; anything larger is not a file ferry wrote. */
const VERSIONS_MAX_BYTES = 4096;

export interface LoadedFoundriesTrust {
  /** Undefined while the device trusts no root of this format (never provisioned, or its root was unreadable). */
  readonly state: FoundriesTrustedState | undefined;
  /** What was moved aside, for the status record's log. */
  readonly recovered: readonly string[];
}

export async function loadFoundriesTrust(dir: string): Promise<LoadedFoundriesTrust> {
  const recovered: string[] = [];
  const root = await readOrMoveAside(path.join(dir, FOUNDRIES_ROOT_FILE), METADATA_MAX_BYTES, isRootJson, recovered);
  if (root === undefined) return { state: undefined, recovered };
  const versionsBytes = await readOrMoveAside(
    path.join(dir, FOUNDRIES_VERSIONS_FILE),
    VERSIONS_MAX_BYTES,
    (bytes) => parseVersions(bytes) !== undefined,
    recovered,
  );
  const versions = versionsBytes === undefined ? undefined : parseVersions(versionsBytes);
  return { state: { root, versions }, recovered };
}

/**
 * Stores a trusted state, each file replaced atomically (temp file, fsync, rename). The root goes first: a power cut
 * between the two leaves the new root with the versions accepted before, which only ever protect less, never trust
 * more.
 */
export async function saveFoundriesTrust(
  dir: string,
  state: FoundriesTrustedState,
  /** The bytes of the targets.json the versions name, once an install went ahead. */
  targets?: Uint8Array,
): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  await writeFileAtomic(path.join(dir, FOUNDRIES_ROOT_FILE), state.root);
  if (state.versions !== undefined) {
    await writeFileAtomic(path.join(dir, FOUNDRIES_VERSIONS_FILE), `${JSON.stringify(state.versions)}\n`);
  }
  if (targets !== undefined) await writeFileAtomic(path.join(dir, FOUNDRIES_TARGETS_FILE), targets);
}

async function readOrMoveAside(
  file: string,
  maxBytes: number,
  valid: (bytes: Uint8Array) => boolean,
  recovered: string[],
): Promise<Uint8Array | undefined> {
  let why: string;
  try {
    const bytes = await readSmallFile(file, maxBytes);
    if (valid(bytes)) return bytes;
    why = 'not a file ferry wrote';
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    why = describeCause(error);
  }
  const aside = `${file}.broken`;
  try {
    await fs.rm(aside, { recursive: true, force: true });
    await fs.rename(file, aside);
    recovered.push(`the trusted Foundries state ${file} was unreadable (${why}) and was moved to ${aside}`);
  } catch (error) {
    recovered.push(
      `the trusted Foundries state ${file} is unreadable (${why}) and could not be moved aside: ${describeCause(error)}`,
    );
  }
  return undefined;
}

/** Whether the bytes are a root of the Foundries format; its signatures are checked by the verifier that reads it. */
function isRootJson(bytes: Uint8Array): boolean {
  try {
    const json = JSON.parse(Buffer.from(bytes).toString('utf8')) as { signed?: { _type?: unknown } } | null;
    return json?.signed?._type === 'Root';
  } catch {
    return false;
  }
}

function parseVersions(bytes: Uint8Array): FoundriesRoleVersions | undefined {
  try {
    const json = JSON.parse(Buffer.from(bytes).toString('utf8')) as Record<string, unknown> | null;
    const roles = ['timestamp', 'snapshot', 'targets'] as const;
    if (json === null || typeof json !== 'object') return undefined;
    if (!roles.every((role) => Number.isSafeInteger(json[role]) && (json[role] as number) >= 1)) return undefined;
    return {
      timestamp: json['timestamp'] as number,
      snapshot: json['snapshot'] as number,
      targets: json['targets'] as number,
    };
  } catch {
    return undefined;
  }
}
