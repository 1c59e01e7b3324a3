import { promises as fs } from 'node:fs';
import fc from 'fast-check';
import path from 'node:path';
import type { FactoryRepo } from '../../src/repo/factory-repo.js';
import { signBundleTargets, type BundleTargetsSigned } from '../../src/tuf/bundle-targets.js';
import { generateSigningKey, type SigningKey } from '../../src/tuf/keys.js';
import { serializeMetadata, signRole, type RoleName } from '../../src/tuf/sign-metadata.js';
import { readBundleJson } from './tamper.js';

/**
 * Tools for building hostile bundles: re-sign any metadata file of a bundle with keys of the test's choosing, add
 * root versions, and flip bytes. Everything a test forges is signed for real, so each case exercises one check.
 */
type Json = Record<string, any>;

export const newKey = (): SigningKey => generateSigningKey().key;

export async function factoryKeys(repo: FactoryRepo, role: RoleName): Promise<SigningKey[]> {
  return repo.keys.load(role);
}

/** Rewrites `tuf/<file>` with `mutate(signed)` and the signatures of `keys` (none: unsigned). */
export async function resign(
  bundle: string,
  file: string,
  keys: readonly SigningKey[],
  mutate: (signed: Json) => Json = (signed) => signed,
): Promise<void> {
  const document = await readBundleJson(bundle, file);
  const signed = mutate(structuredClone(document.signed));
  let written: object;
  if (file === 'bundle-targets.json') written = signBundleTargets(signed as BundleTargetsSigned, keys);
  else written = signRole(roleOf(file), signed, keys);
  await fs.writeFile(path.join(bundle, 'tuf', file), serializeMetadata(written));
}

function roleOf(file: string): RoleName {
  const role = file.replace(/^\d+\./, '').replace(/\.json$/, '');
  if (role !== 'root' && role !== 'targets' && role !== 'snapshot' && role !== 'timestamp')
    throw new Error(`no role for ${file}`);
  return role;
}

/** Adds `tuf/<n+1>.root.json` to the bundle: the newest root there, changed by `mutate`, signed by `keys`. */
export async function addRoot(
  bundle: string,
  keys: readonly SigningKey[],
  mutate: (signed: Json) => void,
): Promise<number> {
  const roots = (await fs.readdir(path.join(bundle, 'tuf'))).filter((name) => /^\d+\.root\.json$/.test(name));
  const newest = Math.max(...roots.map((name) => Number.parseInt(name, 10)));
  const previous = await readBundleJson(bundle, `${newest}.root.json`);
  const signed = structuredClone(previous.signed) as Json;
  signed['version'] = newest + 1;
  mutate(signed);
  await fs.writeFile(
    path.join(bundle, 'tuf', `${newest + 1}.root.json`),
    serializeMetadata(signRole('root', signed, keys)),
  );
  return newest + 1;
}

/** Puts `keys` as the only keys of `role` in a root's signed part, with a threshold. */
export function setRoleKeys(root: Json, role: RoleName, keys: readonly SigningKey[], threshold: number): void {
  for (const key of keys) root['keys'][key.keyId] = key.publicKey;
  root['roles'][role] = { keyids: keys.map((key) => key.keyId), threshold };
}

/** Flips one bit, in a new file renamed over the old one: a hard-linked original elsewhere stays intact. */
export async function flipByte(file: string, offset?: number): Promise<void> {
  const bytes = await fs.readFile(file);
  const at = offset ?? Math.floor(bytes.length / 2);
  bytes[at] = bytes[at]! ^ 0x01;
  await fs.writeFile(`${file}.flipped`, bytes);
  await fs.rename(`${file}.flipped`, file);
}

/** OSTree objects in the bundle that the device's repo does not have yet, by kind (file, dirtree, commit…). */
export async function objectsOnlyInBundle(bundle: string, deviceRepo: string, kind: string): Promise<string[]> {
  const found: string[] = [];
  const root = path.join(bundle, 'ostree_repo', 'objects');
  for (const prefix of await fs.readdir(root)) {
    for (const name of await fs.readdir(path.join(root, prefix))) {
      const [checksum, extension] = name.split('.');
      const wanted = kind === 'file' ? 'filez' : kind;
      if (extension !== wanted) continue;
      const onDevice = path.join(deviceRepo, 'objects', prefix, `${checksum}.${kind === 'file' ? 'file' : kind}`);
      const present = await fs.lstat(onDevice).then(
        () => true,
        () => false,
      );
      if (!present) found.push(path.join(root, prefix, name));
    }
  }
  return found.sort();
}

/**
 * Rewrites one app of a bundle as a malicious publisher with the real targets key could: `edit` changes the
 * project files (the compose file among them); the archive, the app manifest and the target's app uri are then
 * made to match, and targets.json is signed again. Every digest in the chain is right; only the content is hostile.
 */
export async function rewriteApp(
  repo: FactoryRepo,
  bundle: string,
  targetName: string,
  app: string,
  edit: (files: Map<string, { mode: number; content: Buffer }>) => void,
): Promise<void> {
  const { readComposeArchive } = await import('../../src/apps/format/compose-archive.js');
  const { writeTar } = await import('../../src/util/tar-pack.js');
  const { AppsDir } = await import('../../src/apps/format/apps-dir.js');
  const { digestOf, hexOf } = await import('../../src/apps/format/digest.js');
  const apps = new AppsDir(path.join(bundle, 'apps'));
  const targets = await readBundleJson(bundle, 'targets.json');
  const entry = (targets.signed['targets'] as Record<string, Json>)[targetName]!;
  const pin = entry['custom']['docker_compose_apps'][app] as { uri: string };
  const digest = pin.uri.split('@')[1]!;
  const manifest = JSON.parse(await fs.readFile(apps.manifestFile(app, digest), 'utf8')) as Json;
  const archive = await fs.readFile(apps.archiveFile(app, digest, manifest['layers'][0].digest));
  const files = new Map(
    (await readComposeArchive(archive)).files.map((file) => [file.name, { mode: file.mode, content: file.content }]),
  );
  edit(files);
  const scratch = path.join(bundle, '.rewrite.tgz');
  await writeTar(
    scratch,
    [...files].map(([name, file]) => ({ type: 'file' as const, name, mode: file.mode, content: file.content })),
    { gzip: true },
  );
  const newArchive = await fs.readFile(scratch);
  await fs.rm(scratch);
  manifest['layers'] = [{ ...manifest['layers'][0], digest: digestOf(newArchive), size: newArchive.length }];
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  const newDigest = digestOf(manifestBytes);
  const newDir = apps.appDir(app, newDigest);
  await fs.cp(apps.appDir(app, digest), newDir, { recursive: true });
  await fs.rm(path.join(newDir, `${hexOf(digestOf(archive))}.tgz`), { force: true });
  await fs.writeFile(apps.archiveFile(app, newDigest, digestOf(newArchive)), newArchive);
  await fs.writeFile(apps.manifestFile(app, newDigest), manifestBytes);
  const uri = `${pin.uri.split('@')[0]}@${newDigest}`;
  await fs.writeFile(apps.uriFile(app, newDigest), uri);
  await resign(bundle, 'targets.json', await repo.keys.load('targets'), (signed) => {
    signed['targets'][targetName]['custom']['docker_compose_apps'][app]['uri'] = uri;
    return signed;
  });
}

/** Copies of `original` with up to four bytes replaced, or cut short: what a damaged or hostile file can be. */
export function damagedCopies(original: Buffer): fc.Arbitrary<Buffer> {
  return fc
    .tuple(
      fc.array(fc.tuple(fc.nat({ max: original.length - 1 }), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 4,
      }),
      fc.option(fc.nat({ max: original.length - 1 })),
    )
    .map(([changes, cut]) => {
      const copy = Buffer.from(original);
      for (const [at, value] of changes) copy[at] = value;
      return cut === null ? copy : copy.subarray(0, cut);
    });
}
