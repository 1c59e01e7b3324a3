import { promises as fs } from 'node:fs';
import { digestOf } from '../apps/format/digest.js';
import { FerryError, describeCause } from '../errors.js';
import { STATUS_GOALS, type RestartPolicy, type StatusGoal } from '../tuf/target.js';
import { defaultStatusGoal, parseCompose } from '../apps/format/compose.js';
import { COMMIT_CHECKSUM, OstreeRepo } from '../ostree/ostree-repo.js';
import { expiresInDays, parseExpires, formatExpires } from '../tuf/expires.js';
import type { FactoryRepo } from './factory-repo.js';

export interface TargetSpec {
  readonly name: string;
  readonly version: string;
  readonly hardwareIds: readonly string[];
  readonly tags: readonly string[];
  readonly commit?: string | undefined;
  readonly ref?: string | undefined;
  /** Where the commit comes from; without it, the commit must already be in the factory's OSTree repo. */
  readonly ostreeRepo?: string | undefined;
  /** Apps to pin: a name, optionally with the digest of one version (default: the latest added). */
  readonly apps?: ReadonlyArray<{
    readonly name: string;
    readonly digest?: string | undefined;
    readonly restartPolicy?: RestartPolicy | undefined;
    /** Default: healthy when a service of its compose file has a healthcheck, else running. */
    readonly statusGoal?: StatusGoal | undefined;
  }>;
  readonly now?: Date;
}

/** Parses `--app <app>[@sha256:<digest>][=system|container]`. */
export function parseAppOption(text: string): { name: string; digest?: string; restartPolicy?: RestartPolicy } {
  const match = /^([a-z0-9][a-z0-9_-]*)(?:@(sha256:[0-9a-f]{64}))?(?:=(system|container))?$/.exec(text);
  if (match === null)
    throw new FerryError('USAGE', `--app "${text}" must be <app>[@sha256:<digest>][=system|container]`);
  return {
    name: match[1]!,
    ...(match[2] ? { digest: match[2] } : {}),
    ...(match[3] ? { restartPolicy: match[3] as RestartPolicy } : {}),
  };
}

/** Parses `--status-goal <app>=running|healthy`. */
export function parseStatusGoalOption(text: string): { name: string; statusGoal: StatusGoal } {
  const match = /^([a-z0-9][a-z0-9_-]*)=(running|healthy)$/.exec(text);
  if (match === null) throw new FerryError('USAGE', `--status-goal "${text}" must be <app>=running|healthy`);
  return { name: match[1]!, statusGoal: match[2] as StatusGoal };
}

/** The goal of each app: the one given, else the one its compose file in the factory's app store implies. */
async function statusGoalOf(
  repo: FactoryRepo,
  name: string,
  digest: string,
  given: StatusGoal | undefined,
): Promise<StatusGoal> {
  if (given !== undefined) {
    if (!STATUS_GOALS.includes(given))
      throw new FerryError('USAGE', `status goal "${given}" is not running or healthy`);
    return given;
  }
  try {
    return defaultStatusGoal(parseCompose(await fs.readFile(repo.apps.composeFile(name, digest), 'utf8')).services);
  } catch (error) {
    throw new FerryError('REPO_INVALID', `apps/${name}: its compose file cannot be read: ${describeCause(error)}`, {
      cause: error,
    });
  }
}

type PinnedApp = { uri: string; restart_policy: RestartPolicy; status_goal: StatusGoal };

async function pinApps(repo: FactoryRepo, apps: NonNullable<TargetSpec['apps']>): Promise<Record<string, PinnedApp>> {
  const settings = await repo.settings();
  const pinned: Record<string, PinnedApp> = {};
  for (const app of apps) {
    if (pinned[app.name] !== undefined) throw new FerryError('USAGE', `--app ${app.name} is given twice`);
    const digest = app.digest ?? settings.apps[app.name];
    if (digest === undefined)
      throw new FerryError('APP_UNKNOWN', `the repository has no app "${app.name}" (ferry app add adds one)`);
    const layout = repo.apps;
    let manifest: Buffer;
    try {
      manifest = await fs.readFile(layout.manifestFile(app.name, digest));
    } catch {
      throw new FerryError('APP_UNKNOWN', `the repository has no version ${digest} of app "${app.name}"`);
    }
    if (digestOf(manifest) !== digest)
      throw new FerryError('REPO_INVALID', `apps/${app.name}: manifest.json does not hash to ${digest}`);
    const uri = (await fs.readFile(layout.uriFile(app.name, digest), 'utf8')).trim();
    pinned[app.name] = {
      uri,
      restart_policy: app.restartPolicy ?? 'container',
      status_goal: await statusGoalOf(repo, app.name, digest, app.statusGoal),
    };
  }
  return pinned;
}

/** Days for which the factory's own targets metadata stays valid after each change (never past the root). */
export const FACTORY_TARGETS_DAYS = 365;

/** Foundries names a target `<name>-<version>`; custom.name keeps the bare name. */
export function targetNameOf(name: string, version: string): string {
  return `${name}-${version}`;
}

async function resolveCommit(repo: FactoryRepo, spec: TargetSpec): Promise<string> {
  const source = spec.ostreeRepo === undefined ? repo.ostree : new OstreeRepo(spec.ostreeRepo);
  const wanted = spec.commit ?? spec.ref;
  if (wanted === undefined) throw new FerryError('USAGE', 'give --commit or --ref');
  let commit: string;
  try {
    commit = await source.resolve(wanted);
  } catch (error) {
    throw new FerryError('COMMIT_UNKNOWN', `${wanted} is not in ${source.path}: ${describeCause(error)}`, {
      cause: error,
    });
  }
  if (!COMMIT_CHECKSUM.test(commit) || !(await source.hasCommitObject(commit))) {
    throw new FerryError('COMMIT_UNKNOWN', `commit ${commit} is not in ${source.path}`);
  }
  if (spec.ostreeRepo !== undefined) {
    try {
      await repo.ostree.pullLocal(source.path, commit, { untrusted: false });
    } catch (error) {
      throw new FerryError('COMMIT_UNKNOWN', `copying ${commit} from ${source.path} failed: ${describeCause(error)}`, {
        cause: error,
      });
    }
  }
  return commit;
}

/** Records an OSTree target and publishes new targets, snapshot and timestamp versions. */
export async function addTarget(
  repo: FactoryRepo,
  spec: TargetSpec,
): Promise<{ name: string; commit: string; unchanged: boolean }> {
  if (!/^\d+$/.test(spec.version))
    throw new FerryError('USAGE', `--version must be a decimal number, not "${spec.version}"`);
  if (!/^[A-Za-z0-9][A-Za-z0-9._+-]*$/.test(spec.name))
    throw new FerryError('USAGE', `--name "${spec.name}" may hold only letters, digits and . _ + -`);
  if (spec.hardwareIds.length === 0) throw new FerryError('USAGE', 'give at least one --hardware-id');
  if (spec.tags.length === 0) throw new FerryError('USAGE', 'give at least one --tag');
  if ((spec.commit === undefined) === (spec.ref === undefined))
    throw new FerryError('USAGE', 'give exactly one of --commit and --ref');

  await repo.keys.reach(['targets', 'snapshot', 'timestamp']);
  const commit = await resolveCommit(repo, spec);
  const apps = await pinApps(repo, spec.apps ?? []);
  const name = targetNameOf(spec.name, spec.version);
  const entry = {
    length: 0,
    hashes: { sha256: commit },
    custom: {
      targetFormat: 'OSTREE',
      name: spec.name,
      version: spec.version,
      hardwareIds: [...spec.hardwareIds],
      tags: [...spec.tags],
      docker_compose_apps: apps,
    },
  };
  const targets = await repo.targets();
  const existing = targets[name];
  if (existing !== undefined) {
    if (JSON.stringify(existing) === JSON.stringify(entry)) return { name, commit, unchanged: true };
    throw new FerryError('TARGET_EXISTS', `target "${name}" already exists with other content; choose another version`);
  }
  await repo.ostree.setRef(`ferry/${name}`, commit);

  const now = spec.now ?? new Date();
  const rootExpires = parseExpires((await repo.readRole('root')).signed['expires']);
  let expires = expiresInDays(now, FACTORY_TARGETS_DAYS);
  if (rootExpires !== undefined && rootExpires.getTime() < new Date(expires).getTime())
    expires = formatExpires(rootExpires);
  await repo.publishTargets({ ...targets, [name]: entry }, expires);
  return { name, commit, unchanged: false };
}
