import { promises as fs } from 'node:fs';
import path from 'node:path';
import { FerryError } from '../errors.js';
import { expiresInDays, parseExpires } from '../tuf/expires.js';
import { generateSigningKey, type SigningKey } from '../tuf/keys.js';
import { OFFLINE_TARGETS_FIELD } from '../tuf/offline-targets.js';
import type { RoleName } from '../tuf/sign-metadata.js';
import { openSigner, type SignerSpec } from '../tuf/signers/signer-spec.js';
import type { FactoryRepo } from './factory-repo.js';
import { rootKeyIn, signRoleIn } from './metadata-format.js';

type RootSigned = Record<string, unknown> & {
  version: number;
  expires: string;
  keys: Record<string, unknown>;
  roles: Record<string, { keyids: string[]; threshold: number }>;
};

export interface RootChange {
  readonly rootVersion: number;
  readonly keyIds: readonly string[];
}

/**
 * The next N.root.json: the current root changed by `change`, one version up, signed by the current root keys and,
 * when the root keys themselves change, by the new ones too (a device only takes a new root signed by the threshold
 * of both). Signed, not written: a key that cannot sign (a token refusing its PIN) must leave the factory as it was.
 */
async function signNextRoot(
  repo: FactoryRepo,
  change: (signed: RootSigned) => RootSigned,
  newRootKeys: readonly SigningKey[],
  options: { readonly expiresInDays?: number | undefined; readonly now?: Date | undefined },
): Promise<{ readonly version: number; readonly document: Record<string, unknown> }> {
  const current = (await repo.readRole('root')).signed as RootSigned;
  const next = change(structuredClone(current));
  next.version = current.version + 1;
  if (options.expiresInDays !== undefined)
    next.expires = expiresInDays(options.now ?? new Date(), options.expiresInDays);
  const expires = parseExpires(next.expires);
  if (expires === undefined || expires.getTime() <= (options.now ?? new Date()).getTime()) {
    throw new FerryError(
      'EXPIRY_TOO_LATE',
      `root.json version ${next.version} would expire at ${next.expires}, which is not in the future; give --root-expires-in-days`,
    );
  }
  const signers = [...(await repo.keys.load('root')), ...newRootKeys];
  return { version: next.version, document: signRoleIn(await repo.metadataFormat(), 'root', next, signers) };
}

/**
 * `keys rotate --role R`: a new online key for the role replaces the old one(s) in the next root; the old keys move
 * to `keys/<role>/retired/` once the new root is written. The new key is a PEM file, or, given `signer`, made in (or
 * taken by label from) a PKCS#11 token, or a signing command's. Metadata signed by the old keys stops verifying at
 * that root, so the next export re-signs everything.
 */
export async function rotateRoleKey(
  repo: FactoryRepo,
  role: RoleName,
  options: { readonly expiresInDays?: number | undefined; readonly now?: Date; readonly signer?: SignerSpec } = {},
): Promise<RootChange> {
  const old = await repo.keys.load(role);
  const made =
    options.signer === undefined
      ? generateSigningKey()
      : { key: openSigner(options.signer, { create: true }), spec: options.signer };
  const { key } = made;
  const format = await repo.metadataFormat();
  // The ids the root names them by, which in the Foundries format are not the key store's.
  const oldIds = new Set(old.map((entry) => rootKeyIn(format, entry).keyId));
  const named = rootKeyIn(format, key);
  const next = await signNextRoot(
    repo,
    (signed) => {
      const kept = signed.roles[role]!.keyids.filter((id) => !oldIds.has(id));
      signed.roles[role] = { ...signed.roles[role]!, keyids: [...kept, named.keyId] };
      for (const id of oldIds)
        if (!Object.values(signed.roles).some((entry) => entry.keyids.includes(id))) delete signed.keys[id];
      signed.keys[named.keyId] = named.json;
      return signed;
    },
    role === 'root' ? [key] : [],
    options,
  );
  // Stored before the root names it; until the root is written an extra signature by it is simply not counted.
  if ('privatePem' in made) await repo.keys.store(role, key, made.privatePem);
  else await repo.keys.storeSigner(role, key, made.spec);
  await repo.writeRole('root', next.document);
  for (const entry of old) await repo.keys.retire(role, entry.keyId);
  return { rootVersion: next.version, keyIds: [named.keyId] };
}

/**
 * `keys add-offline`: new targets keys whose private halves go to `outDir` (to be kept off the workstation), or that
 * live in tokens or behind commands (`signers`: made there, or taken by label), added to the targets role and named
 * in root.json as the offline targets keys: a production bundle is accepted only once `threshold` of them have
 * signed its bundle-targets.json (`ferry bundle sign`).
 */
export async function addOfflineTargetsKeys(
  repo: FactoryRepo,
  options: {
    readonly count: number;
    readonly threshold: number;
    readonly outDir?: string | undefined;
    readonly signers?: readonly SignerSpec[] | undefined;
    readonly expiresInDays?: number | undefined;
    readonly now?: Date;
  },
): Promise<RootChange & { readonly files: readonly string[] }> {
  const count = options.signers?.length ?? options.count;
  if (options.threshold < 1 || options.threshold > count) {
    throw new FerryError('USAGE', `--threshold must be between 1 and the number of keys (${count})`);
  }
  if ((options.signers === undefined) === (options.outDir === undefined))
    throw new FerryError(
      'USAGE',
      'give either --out (where new private keys are written) or one --signer per key held elsewhere',
    );
  // Offline targets keys are named in a field of ferry's root that aktualizr does not know: a Foundries root would
  // carry keys no device of that format counts apart. fioctl's own offline keys are plain targets keys.
  if ((await repo.metadataFormat()) !== 'ferry')
    throw new FerryError(
      'METADATA_FORMAT_MISMATCH',
      'this factory signs in the fioctl format, which has no offline targets keys; keys add-offline needs a ferry-format factory',
    );
  const keys: { key: SigningKey; privatePem?: string }[] =
    options.signers === undefined
      ? Array.from({ length: count }, () => generateSigningKey())
      : options.signers.map((spec) => ({ key: openSigner(spec, { create: true }) }));
  const ids = keys.map(({ key }) => key.keyId);
  const next = await signNextRoot(
    repo,
    (signed) => {
      for (const { key } of keys) signed.keys[key.keyId] = key.publicKey;
      signed.roles['targets'] = { ...signed.roles['targets']!, keyids: [...signed.roles['targets']!.keyids, ...ids] };
      const previous = (signed[OFFLINE_TARGETS_FIELD] as { keyids?: string[] } | undefined)?.keyids ?? [];
      signed[OFFLINE_TARGETS_FIELD] = { keyids: [...previous, ...ids], threshold: options.threshold };
      return signed;
    },
    [],
    options,
  );
  // The private halves are written before the root: a root must never name keys that nobody holds.
  const files: string[] = [];
  if (options.outDir !== undefined) {
    await fs.mkdir(options.outDir, { recursive: true, mode: 0o700 });
    for (const { key, privatePem } of keys) {
      const file = path.join(options.outDir, `targets-offline-${key.keyId.slice(0, 16)}.pem`);
      await fs.writeFile(file, privatePem!, { mode: 0o600, flag: 'wx' });
      files.push(file);
    }
  }
  await repo.writeRole('root', next.document);
  return { rootVersion: next.version, keyIds: ids, files };
}
