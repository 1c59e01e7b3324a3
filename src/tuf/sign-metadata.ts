import './models-patch.js';
import { Metadata, MetadataKind } from '@tufjs/models';
import type { SigningKey } from './keys.js';

export type RoleName = 'root' | 'targets' | 'snapshot' | 'timestamp';
export const ROLE_NAMES: readonly RoleName[] = ['root', 'targets', 'snapshot', 'timestamp'];

/**
 * Signs the `signed` part of a top-level role with every given key, through @tufjs/models so that the bytes signed
 * are exactly the canonical JSON a verifier recomputes. Returns the document to write.
 */
export function signRole(
  role: RoleName,
  signed: Record<string, unknown>,
  keys: readonly SigningKey[],
): Record<string, unknown> {
  const metadata = Metadata.fromJSON(role as MetadataKind.Root, { signed: signed as never, signatures: [] });
  for (const key of keys) metadata.sign(key.signer(), true);
  return metadata.toJSON() as Record<string, unknown>;
}

export function serializeMetadata(document: unknown): string {
  return `${JSON.stringify(document, null, 1)}\n`;
}
