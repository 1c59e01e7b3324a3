import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { FactoryRepo } from '../../src/repo/factory-repo.js';
import { serializeMetadata, signRole, type RoleName } from '../../src/tuf/sign-metadata.js';

type Json = Record<string, unknown>;

export async function readBundleJson(bundleDir: string, file: string): Promise<{ signed: Json; signatures: Array<{ keyid: string; sig: string }> }> {
  return JSON.parse(await fs.readFile(path.join(bundleDir, 'tuf', file), 'utf8'));
}

/** Changes a role's signed part in a bundle and signs it again with the factory's real keys: valid signatures, new content. */
export async function resignBundleRole(repo: FactoryRepo, bundleDir: string, role: Exclude<RoleName, 'root'>, mutate: (signed: Json) => Json): Promise<void> {
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
