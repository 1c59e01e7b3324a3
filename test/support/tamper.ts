import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { FactoryRepo } from '../../src/repo/factory-repo.js';
import { serializeMetadata, signRole, type RoleName } from '../../src/tuf/sign-metadata.js';

type Json = Record<string, unknown>;

export async function readBundleJson(
  bundleDir: string,
  file: string,
): Promise<{ signed: Json; signatures: Array<{ keyid: string; sig: string }> }> {
  return JSON.parse(await fs.readFile(path.join(bundleDir, 'tuf', file), 'utf8'));
}

/** Changes a role's signed part in a bundle and signs it again with the factory's real keys: valid signatures, new content. */
export async function resignBundleRole(
  repo: FactoryRepo,
  bundleDir: string,
  role: Exclude<RoleName, 'root'>,
  mutate: (signed: Json) => Json,
): Promise<void> {
  const document = await readBundleJson(bundleDir, `${role}.json`);
  const signed = signRole(role, mutate(document.signed), await repo.keys.load(role));
  await fs.writeFile(path.join(bundleDir, 'tuf', `${role}.json`), serializeMetadata(signed));
}

/** Flips one bit of the first signature in a metadata file. */
export async function flipSignatureBit(bundleDir: string, file: string): Promise<void> {
  const document = await readBundleJson(bundleDir, file);
  const signature = document.signatures[0]!;
  const first = Number.parseInt(signature.sig[0]!, 16) ^ 0x1;
  signature.sig = first.toString(16) + signature.sig.slice(1);
  await fs.writeFile(path.join(bundleDir, 'tuf', file), serializeMetadata(document));
}

/** The date string of a moment in the past, in TUF's format. */
export function pastDate(daysAgo: number): string {
  return new Date(Date.now() - daysAgo * 86_400_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Rotates the root key: writes (N+1).root.json with a new root key, signed by both the old and the new one, as a
 * root rotation must be. The new private key replaces the old one in the factory's key store.
 */
export async function rotateRootKey(repo: FactoryRepo): Promise<number> {
  const { generateSigningKey } = await import('../../src/tuf/keys.js');
  const current = await repo.readRole('root');
  const [oldKey] = await repo.keys.load('root');
  const { key: newKey, privatePem } = generateSigningKey();
  const signed = structuredClone(current.signed) as {
    version: number;
    keys: Json;
    roles: Record<string, { keyids: string[] }>;
  };
  signed.version += 1;
  signed.keys[newKey.keyId] = newKey.publicKey;
  delete signed.keys[oldKey!.keyId];
  signed.roles['root']!.keyids = [newKey.keyId];
  await repo.writeRole('root', signRole('root', signed as unknown as Json, [oldKey!, newKey]));
  const roleDir = path.join(repo.keys.dir, 'root');
  await fs.rm(path.join(roleDir, `${oldKey!.keyId}.pem`));
  await fs.writeFile(path.join(roleDir, `${newKey.keyId}.pem`), privatePem, { mode: 0o600 });
  return signed.version;
}
