import { promises as fs } from 'node:fs';
import path from 'node:path';
import { FerryError, describeCause } from '../errors.js';
import { AppsDir } from '../apps/format/apps-dir.js';
import { OstreeRepo } from '../ostree/ostree-repo.js';
import { isEmptyOrMissingDir, readSmallFile, writeFileAtomic } from '../util/atomic-file.js';
import { expiresInDays } from '../tuf/expires.js';
import { fioMetaEntryOf } from '../tuf/foundries/fio-sign.js';
import { ROLE_NAMES, type RoleName } from '../tuf/sign-metadata.js';
import { METADATA_MAX_BYTES } from '../tuf/verify-metadata.js';
import { generateSigningKey } from '../tuf/keys.js';
import { openSigner, type SignerSpec } from '../tuf/signers/signer-spec.js';
import { KeyStore } from './keystore.js';
import {
  METADATA_FORMATS,
  roleTypeIn,
  rootKeyIn,
  serializeIn,
  signRoleIn,
  type MetadataFormat,
} from './metadata-format.js';

/**
 * The release engineer's factory repository, a plain directory:
 *   ferry-repo.json   format and counters
 *   keys/<role>/      private keys (0600)
 *   tuf/              N.root.json for every root version, and the current targets, snapshot and timestamp
 *   ostree_repo/      an archive-mode OSTree repo with every target's commit
 *   apps/             compose apps, content-addressed
 */
export interface RepoSettings {
  readonly format: 1;
  /** The TUF format the factory signs in (absent in factories made before there was a choice: ferry's). */
  readonly metadataFormat?: MetadataFormat;
  /** The factory's name: the path of its app uris (`apps.ferry.local/<factory>/<app>@sha256:…`). */
  readonly factory: string;
  /** The version of the last bundle-targets.json this repository signed. */
  readonly bundleVersion: number;
  /** The digest of the latest version added of each app. */
  readonly apps: Readonly<Record<string, string>>;
}

type SignedDocument = { signed: Record<string, unknown>; signatures: unknown[] };

/** One signed version of the repository's targets, snapshot and timestamp. */
export interface SignedRelease {
  readonly targets: Record<string, unknown>;
  readonly snapshot: Record<string, unknown>;
  readonly timestamp: Record<string, unknown>;
}

export const SPEC_VERSION = '1.0.31';
const SETTINGS_FILE = 'ferry-repo.json';

export class FactoryRepo {
  readonly keys: KeyStore;
  readonly ostree: OstreeRepo;

  constructor(readonly dir: string) {
    this.keys = new KeyStore(path.join(dir, 'keys'));
    this.ostree = new OstreeRepo(path.join(dir, 'ostree_repo'));
  }

  get tufDir(): string {
    return path.join(this.dir, 'tuf');
  }

  get appsDir(): string {
    return path.join(this.dir, 'apps');
  }

  get apps(): AppsDir {
    return new AppsDir(this.appsDir);
  }

  async settings(): Promise<RepoSettings> {
    const stored = JSON.parse(await fs.readFile(path.join(this.dir, SETTINGS_FILE), 'utf8')) as Partial<RepoSettings>;
    return { format: 1, factory: 'factory', bundleVersion: 0, apps: {}, ...stored };
  }

  async metadataFormat(): Promise<MetadataFormat> {
    return (await this.settings()).metadataFormat ?? 'ferry';
  }

  async saveSettings(settings: RepoSettings): Promise<void> {
    await writeFileAtomic(path.join(this.dir, SETTINGS_FILE), `${JSON.stringify(settings, null, 2)}\n`);
  }

  async readRole(role: RoleName): Promise<SignedDocument> {
    const name = role === 'root' ? `${await this.rootVersion()}.root.json` : `${role}.json`;
    return JSON.parse(
      (await readSmallFile(path.join(this.tufDir, name), METADATA_MAX_BYTES)).toString('utf8'),
    ) as SignedDocument;
  }

  /** Every root version this repository has signed, oldest first. */
  async rootFiles(): Promise<string[]> {
    const names = (await fs.readdir(this.tufDir)).filter((name) => /^\d+\.root\.json$/.test(name));
    return names
      .sort((a, b) => Number.parseInt(a, 10) - Number.parseInt(b, 10))
      .map((name) => path.join(this.tufDir, name));
  }

  async rootVersion(): Promise<number> {
    const files = await this.rootFiles();
    if (files.length === 0) throw new FerryError('REPO_INVALID', `${this.tufDir} holds no N.root.json`);
    return Number.parseInt(path.basename(files[files.length - 1]!), 10);
  }

  async writeRole(role: RoleName, document: Record<string, unknown>): Promise<void> {
    const version = (document['signed'] as { version: number }).version;
    const name = role === 'root' ? `${version}.root.json` : `${role}.json`;
    await writeFileAtomic(path.join(this.tufDir, name), serializeIn(await this.metadataFormat(), document));
  }

  /**
   * Signs `targetsSigned` as the next targets version, then a snapshot and a timestamp that point at it, all with
   * the given expiry. Versions only ever grow, so every device sees each publication as new.
   */
  /** Signs the next versions of targets, snapshot and timestamp, and makes them the repository's. */
  async publishTargets(targets: Record<string, unknown>, expires: string): Promise<SignedRelease> {
    const release = await this.signRelease(targets, expires);
    await this.saveRelease(release);
    return release;
  }

  /**
   * The next versions of targets, snapshot and timestamp, signed but not written: an export writes them into its
   * bundle and saves them here only once the bundle is done (saveRelease), so a failed export moves no version.
   */
  async signRelease(targets: Record<string, unknown>, expires: string): Promise<SignedRelease> {
    const [oldTargets, oldSnapshot, oldTimestamp, format] = await Promise.all([
      this.readRole('targets'),
      this.readRole('snapshot'),
      this.readRole('timestamp'),
      this.metadataFormat(),
    ]);
    const targetsVersion = (oldTargets.signed['version'] as number) + 1;
    const snapshotVersion = (oldSnapshot.signed['version'] as number) + 1;
    const timestampVersion = (oldTimestamp.signed['version'] as number) + 1;
    const signedTargets = signRoleIn(
      format,
      'targets',
      { ...oldTargets.signed, targets, version: targetsVersion, expires },
      await this.keys.load('targets'),
    );
    const snapshot = signRoleIn(
      format,
      'snapshot',
      {
        _type: roleTypeIn(format, 'snapshot'),
        ...(format === 'ferry' ? { spec_version: SPEC_VERSION } : {}),
        version: snapshotVersion,
        expires,
        meta:
          format === 'ferry'
            ? { 'targets.json': { version: targetsVersion } }
            : // aktualizr checks targets.json against the hashes and length the snapshot names.
              {
                'root.json': { version: await this.rootVersion() },
                'targets.json': fioMetaEntryOf(serializeIn(format, signedTargets), targetsVersion, ['sha256']),
              },
      },
      await this.keys.load('snapshot'),
    );
    const timestamp = signRoleIn(
      format,
      'timestamp',
      {
        _type: roleTypeIn(format, 'timestamp'),
        ...(format === 'ferry' ? { spec_version: SPEC_VERSION } : {}),
        version: timestampVersion,
        expires,
        meta: {
          'snapshot.json':
            format === 'ferry'
              ? { version: snapshotVersion }
              : // aktualizr requires the snapshot's hashes in the timestamp (fioctl's server writes both).
                fioMetaEntryOf(serializeIn(format, snapshot), snapshotVersion, ['sha256', 'sha512']),
        },
      },
      await this.keys.load('timestamp'),
    );
    return { targets: signedTargets, snapshot, timestamp };
  }

  async saveRelease(release: SignedRelease): Promise<void> {
    // Written leaf first: a reader that sees the new timestamp finds the snapshot and targets it names.
    await this.writeRole('targets', release.targets);
    await this.writeRole('snapshot', release.snapshot);
    await this.writeRole('timestamp', release.timestamp);
  }

  async targets(): Promise<
    Record<string, { hashes: Record<string, string>; length: number; custom?: Record<string, unknown> }>
  > {
    return (await this.readRole('targets')).signed['targets'] as Record<
      string,
      { hashes: Record<string, string>; length: number; custom?: Record<string, unknown> }
    >;
  }
}

export async function openFactoryRepo(dir: string): Promise<FactoryRepo> {
  const repo = new FactoryRepo(dir);
  try {
    const settings = await repo.settings();
    if (settings.format !== 1) throw new Error(`unknown format ${String(settings.format)}`);
    if (settings.metadataFormat !== undefined && !METADATA_FORMATS.includes(settings.metadataFormat))
      throw new Error(`unknown metadata format ${JSON.stringify(settings.metadataFormat)}`);
    await fs.access(repo.tufDir);
  } catch (error) {
    throw new FerryError('REPO_INVALID', `${dir} is not a ferry factory repository: ${describeCause(error)}`, {
      cause: error,
    });
  }
  return repo;
}

export interface InitOptions {
  readonly rootExpiresInDays: number;
  readonly factory?: string;
  /** The TUF format the factory signs in from now on (default ferry). */
  readonly metadataFormat?: MetadataFormat;
  /** Roles whose key lives in a token or behind a command (made there, or taken by label), not in keys/<role>/. */
  readonly signers?: Partial<Record<RoleName, SignerSpec>>;
  readonly now?: Date;
}

/** Creates the four roles (one ed25519 key each), 1.root.json, empty targets, the OSTree repo and apps/. */
export async function initFactoryRepo(dir: string, options: InitOptions): Promise<FactoryRepo> {
  if (options.factory !== undefined && !/^[a-z0-9][a-z0-9-]{0,62}$/.test(options.factory)) {
    throw new FerryError('USAGE', `--factory "${options.factory}" may hold only lower-case letters, digits and -`);
  }
  if (!(await isEmptyOrMissingDir(dir))) throw new FerryError('REPO_EXISTS', `${dir} is not empty`);
  const format = options.metadataFormat ?? 'ferry';
  const now = options.now ?? new Date();
  // Every key is reached before anything is written: a token that refuses its PIN leaves no half-made factory.
  const made = ROLE_NAMES.map((role) => {
    const spec = options.signers?.[role];
    if (spec === undefined) return { role, ...generateSigningKey() };
    return { role, key: openSigner(spec, { create: true }), spec };
  });
  const repo = new FactoryRepo(dir);
  await fs.mkdir(repo.tufDir, { recursive: true });
  await fs.mkdir(repo.appsDir, { recursive: true });
  // The format is recorded first: every role below is written in it.
  await repo.saveSettings({
    format: 1,
    ...(format === 'ferry' ? {} : { metadataFormat: format }),
    factory: options.factory ?? 'factory',
    bundleVersion: 0,
    apps: {},
  });

  for (const entry of made) {
    if ('privatePem' in entry) await repo.keys.store(entry.role, entry.key, entry.privatePem);
    else await repo.keys.storeSigner(entry.role, entry.key, entry.spec);
  }
  const keys = Object.fromEntries(made.map(({ role, key }) => [role, key] as const));
  const named = (role: RoleName) => rootKeyIn(format, keys[role]!);
  // Only ferry's format has spec_version and consistent_snapshot; aktualizr's generator writes neither.
  const ferryOnly = (fields: Record<string, unknown>) => (format === 'ferry' ? fields : {});
  const rootExpires = expiresInDays(now, options.rootExpiresInDays);
  const root = signRoleIn(
    format,
    'root',
    {
      _type: roleTypeIn(format, 'root'),
      ...ferryOnly({ spec_version: SPEC_VERSION }),
      version: 1,
      expires: rootExpires,
      ...ferryOnly({ consistent_snapshot: false }),
      keys: Object.fromEntries(ROLE_NAMES.map((role) => [named(role).keyId, named(role).json])),
      roles: Object.fromEntries(ROLE_NAMES.map((role) => [role, { keyids: [named(role).keyId], threshold: 1 }])),
    },
    [keys['root']!],
  );
  await repo.writeRole('root', root);
  const expires = expiresInDays(now, Math.min(365, options.rootExpiresInDays));
  await repo.writeRole(
    'targets',
    signRoleIn(
      format,
      'targets',
      {
        _type: roleTypeIn(format, 'targets'),
        ...ferryOnly({ spec_version: SPEC_VERSION }),
        version: 1,
        expires,
        targets: {},
      },
      [keys['targets']!],
    ),
  );
  // Version 1 of snapshot and timestamp never leaves the factory: every export signs new ones above them.
  await repo.writeRole(
    'snapshot',
    signRoleIn(
      format,
      'snapshot',
      {
        _type: roleTypeIn(format, 'snapshot'),
        ...ferryOnly({ spec_version: SPEC_VERSION }),
        version: 1,
        expires,
        meta: { 'targets.json': { version: 1 } },
      },
      [keys['snapshot']!],
    ),
  );
  await repo.writeRole(
    'timestamp',
    signRoleIn(
      format,
      'timestamp',
      {
        _type: roleTypeIn(format, 'timestamp'),
        ...ferryOnly({ spec_version: SPEC_VERSION }),
        version: 1,
        expires,
        meta: { 'snapshot.json': { version: 1 } },
      },
      [keys['timestamp']!],
    ),
  );
  await OstreeRepo.create(repo.ostree.path, 'archive');
  return repo;
}
