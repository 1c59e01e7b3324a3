import type { Root } from '@tufjs/models';

/**
 * The key ids of `role` in `root` whose signatures over `signed` verify. A key id that signs twice counts once; a
 * signature by a key the role does not list counts for nothing. Pure: the caller decides what the count means.
 */
export function validSignatureKeyIds(
  root: Root,
  role: string,
  signed: unknown,
  signatures: readonly unknown[],
): Set<string> {
  const valid = new Set<string>();
  const keyIds = root.roles[role]?.keyIDs ?? [];
  for (const entry of signatures) {
    const { keyid, sig } = (entry ?? {}) as { keyid?: unknown; sig?: unknown };
    if (typeof keyid !== 'string' || typeof sig !== 'string') continue;
    if (!keyIds.includes(keyid) || valid.has(keyid)) continue;
    const key = root.keys[keyid];
    if (key === undefined) continue;
    try {
      // A Signable shim lets the models' own verifier handle every key type root.json may hold.
      key.verifySignature({
        signed: { toJSON: () => signed },
        signatures: { [keyid]: { keyID: keyid, sig } },
      } as never);
      valid.add(keyid);
    } catch {
      // An invalid signature simply does not count towards the threshold.
    }
  }
  return valid;
}
