import { FerryError, describeCause } from '../errors.js';
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
  readonly now?: Date;
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

  const commit = await resolveCommit(repo, spec);
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
      docker_compose_apps: {},
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
