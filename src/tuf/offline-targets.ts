import type { Root } from '@tufjs/models';
import { validSignatureKeyIds } from './signatures.js';

/**
 * root.json may name some targets keys as offline keys (kept off the workstation), with a threshold of their own:
 * a production bundle's bundle-targets.json then needs that many of their signatures, added with `ferry bundle sign`,
 * before a device takes it. The field is part of root's signed body, so it is as trusted as the root itself.
 */
export const OFFLINE_TARGETS_FIELD = 'x-ferry-offline-targets';

export interface OfflineTargetsPolicy {
  readonly keyIds: readonly string[];
  readonly threshold: number;
}

/** The policy of a verified root, or null if it names no offline targets keys. */
export function offlineTargetsPolicy(root: Root): OfflineTargetsPolicy | null {
  const field = root.unrecognizedFields?.[OFFLINE_TARGETS_FIELD] as
    { keyids?: unknown; threshold?: unknown } | undefined;
  if (field === undefined) return null;
  const keyIds = Array.isArray(field.keyids) ? field.keyids.filter((id): id is string => typeof id === 'string') : [];
  const threshold = Number.isSafeInteger(field.threshold) ? (field.threshold as number) : 1;
  // Only keys the targets role lists can count: the field cannot widen who may sign.
  const targetsKeys = root.roles['targets']?.keyIDs ?? [];
  return { keyIds: keyIds.filter((id) => targetsKeys.includes(id)), threshold: Math.max(1, threshold) };
}

/** How many of the offline keys validly signed `signed`. */
export function offlineSignatures(
  root: Root,
  policy: OfflineTargetsPolicy,
  signed: unknown,
  signatures: readonly unknown[],
): number {
  return [...validSignatureKeyIds(root, 'targets', signed, signatures)].filter((id) => policy.keyIds.includes(id))
    .length;
}
