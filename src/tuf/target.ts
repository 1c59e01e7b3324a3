/**
 * A target as ferry uses it, read from the signed custom fields of targets.json (reference §2). Only signed fields
 * are read: nothing about a target comes from an unsigned file.
 */
export type RestartPolicy = 'container' | 'system';

/**
 * Pantavisor's status goal of an app: `running` (every service has a running container) or `healthy` (every service
 * whose compose file has a healthcheck also reports healthy). The update commits only once every app reached it.
 */
export type StatusGoal = 'running' | 'healthy';
export const STATUS_GOALS: readonly StatusGoal[] = ['running', 'healthy'];

/** An app pinned into a target: `custom.docker_compose_apps.<app>`. */
export interface AppPin {
  readonly uri: string;
  /** The app manifest digest that the uri ends with. */
  readonly digest: string;
  /** Pantavisor's restart policy: a change to a `system` app needs a reboot; `container` apps restart alone. */
  readonly restartPolicy: RestartPolicy;
  /**
   * The signed `status_goal`; absent in older targets and in Foundries ones, where the device derives it from the
   * app's compose file (a service with a healthcheck: healthy; else running).
   */
  readonly statusGoal?: StatusGoal;
}

export interface Target {
  readonly name: string;
  /** The OSTree commit checksum: for an OSTree target the commit is the target hash. */
  readonly commit: string;
  readonly version: string;
  readonly hardwareIds: readonly string[];
  readonly tags: readonly string[];
  readonly apps: Readonly<Record<string, AppPin>>;
}

const COMMIT = /^[0-9a-f]{64}$/;
/** Compose project names: lower case letters, digits, `-` and `_`. */
export const APP_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const APP_URI = /^[a-z0-9.-]+(?::\d+)?\/[a-z0-9._/-]+@(sha256:[0-9a-f]{64})$/;

function stringList(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : [];
}

export function appsFromCustom(value: unknown): Record<string, AppPin> | { invalid: string } {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return { invalid: 'docker_compose_apps must be an object' };
  const apps: Record<string, AppPin> = {};
  for (const [name, entry] of Object.entries(value as Record<string, unknown>)) {
    if (!APP_NAME.test(name) || name === 'blobs') return { invalid: `app name "${name}" is not allowed` };
    const {
      uri,
      restart_policy: policy,
      status_goal: goal,
    } = (entry ?? {}) as { uri?: unknown; restart_policy?: unknown; status_goal?: unknown };
    const match = typeof uri === 'string' ? APP_URI.exec(uri) : null;
    if (match === null) return { invalid: `app "${name}": uri must be <host>/<path>@sha256:<digest>` };
    if (policy !== undefined && policy !== 'container' && policy !== 'system') {
      return { invalid: `app "${name}": restart_policy must be "container" or "system"` };
    }
    if (goal !== undefined && goal !== 'running' && goal !== 'healthy') {
      return { invalid: `app "${name}": status_goal must be "running" or "healthy"` };
    }
    apps[name] = {
      uri: uri as string,
      digest: match[1]!,
      restartPolicy: policy ?? 'container',
      ...(goal === undefined ? {} : { statusGoal: goal }),
    };
  }
  return apps;
}

/** Returns the target, or a reason why this entry of targets.json can't be an OSTree target. */
export function targetFromMetadata(
  name: string,
  hashes: Record<string, string>,
  custom: Record<string, unknown>,
): Target | { invalid: string } {
  const commit = hashes['sha256'];
  if (typeof commit !== 'string' || !COMMIT.test(commit)) {
    return { invalid: `${name}: hashes.sha256 is not an OSTree commit checksum` };
  }
  if (custom['targetFormat'] !== undefined && custom['targetFormat'] !== 'OSTREE') {
    return { invalid: `${name}: targetFormat is ${String(custom['targetFormat'])}, not OSTREE` };
  }
  const version = custom['version'];
  if (typeof version !== 'string' || !/^\d+$/.test(version)) {
    return { invalid: `${name}: custom.version must be a decimal number` };
  }
  const apps = appsFromCustom(custom['docker_compose_apps']);
  if ('invalid' in apps) return { invalid: `${name}: ${apps.invalid}` };
  return {
    name,
    commit,
    version,
    hardwareIds: stringList(custom['hardwareIds']),
    tags: stringList(custom['tags']),
    apps,
  };
}

/**
 * The usable targets of a targets.json the device stored once it had verified it, for what the device knows of its
 * targets; none when the text is not such a document. Foundries tools write hashes in upper case, ferry in lower.
 */
export function storedTargetsOf(text: string): Target[] {
  try {
    const document = JSON.parse(text) as {
      signed: { targets: Record<string, { hashes: Record<string, string>; custom?: Record<string, unknown> }> };
    };
    return Object.entries(document.signed.targets).flatMap(([name, entry]) => {
      const hashes = Object.fromEntries(Object.entries(entry.hashes).map(([kind, hash]) => [kind, hash.toLowerCase()]));
      const target = targetFromMetadata(name, hashes, entry.custom ?? {});
      return 'invalid' in target ? [] : [target];
    });
  } catch {
    return [];
  }
}

/** Versions are decimal strings ("42"); compare them as numbers of any length. */
export function compareVersions(a: string, b: string): number {
  const x = a.replace(/^0+(?=\d)/, '');
  const y = b.replace(/^0+(?=\d)/, '');
  if (x.length !== y.length) return x.length - y.length;
  return x < y ? -1 : x > y ? 1 : 0;
}
