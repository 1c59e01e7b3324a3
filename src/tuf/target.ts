/**
 * A target as ferry uses it, read from the signed custom fields of targets.json (reference §2). Only signed fields
 * are read: nothing about a target comes from an unsigned file.
 */
export interface Target {
  readonly name: string;
  /** The OSTree commit checksum: for an OSTree target the commit is the target hash. */
  readonly commit: string;
  readonly version: string;
  readonly hardwareIds: readonly string[];
  readonly tags: readonly string[];
}

const COMMIT = /^[0-9a-f]{64}$/;

function stringList(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : [];
}

/** Returns the target, or a reason why this entry of targets.json can't be an OSTree target. */
export function targetFromMetadata(
  name: string,
  hashes: Record<string, string>,
  custom: Record<string, unknown>,
): Target | { invalid: string } {
  const commit = hashes['sha256'];
  if (typeof commit !== 'string' || !COMMIT.test(commit))
    return { invalid: `${name}: hashes.sha256 is not an OSTree commit checksum` };
  if (custom['targetFormat'] !== undefined && custom['targetFormat'] !== 'OSTREE') {
    return { invalid: `${name}: targetFormat is ${String(custom['targetFormat'])}, not OSTREE` };
  }
  const version = custom['version'];
  if (typeof version !== 'string' || !/^\d+$/.test(version))
    return { invalid: `${name}: custom.version must be a decimal number` };
  return { name, commit, version, hardwareIds: stringList(custom['hardwareIds']), tags: stringList(custom['tags']) };
}

/** Versions are decimal strings ("42"); compare them as numbers of any length. */
export function compareVersions(a: string, b: string): number {
  const x = a.replace(/^0+(?=\d)/, '');
  const y = b.replace(/^0+(?=\d)/, '');
  if (x.length !== y.length) return x.length - y.length;
  return x < y ? -1 : x > y ? 1 : 0;
}
