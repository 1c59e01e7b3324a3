import { canonicalize } from '@tufjs/canonical-json';
import type { Root } from '@tufjs/models';
import { FerryError } from '../errors.js';
import { parseExpires } from './expires.js';
import type { SigningKey } from './keys.js';

/** `bundle-targets.json`: which targets a stick carries, signed by the targets role (reference §1). */
export type BundleType = 'ci' | 'prod';

export interface BundleTargetsSigned {
  _type: 'bundle';
  expires: string;
  version: number;
  'x-ferry-bundle': { type: BundleType; tag: string; targets: string[] };
}

export interface BundleTargets {
  readonly type: BundleType;
  readonly tag: string;
  readonly targets: readonly string[];
  readonly expires: Date;
  readonly version: number;
}

export const BUNDLE_TARGETS_FILE = 'bundle-targets.json';

export function signBundleTargets(signed: BundleTargetsSigned, keys: readonly SigningKey[]): object {
  const bytes = Buffer.from(canonicalize(signed));
  return { signed, signatures: keys.map((key) => ({ keyid: key.keyId, sig: key.signHex(bytes) })) };
}

function malformed(message: string): FerryError {
  return new FerryError('METADATA_MALFORMED', `${BUNDLE_TARGETS_FILE}: ${message}`);
}

/**
 * Checks bundle-targets.json against the targets role of the newest verified root. Pure: bytes in, a verified
 * object out. Distinct signatures from distinct role keys must reach the threshold; a key id that appears twice
 * counts once.
 */
export function verifyBundleTargets(json: unknown, root: Root, now: Date): BundleTargets {
  if (typeof json !== 'object' || json === null) throw malformed('not a JSON object');
  const { signed, signatures } = json as { signed?: unknown; signatures?: unknown };
  if (typeof signed !== 'object' || signed === null || !Array.isArray(signatures)) {
    throw malformed('needs "signed" and "signatures"');
  }
  const body = signed as Partial<BundleTargetsSigned>;
  if (body._type !== 'bundle') throw malformed(`_type is ${JSON.stringify(body._type)}, expected "bundle"`);
  const expires = parseExpires(body.expires);
  if (expires === undefined) throw malformed(`expires ${JSON.stringify(body.expires)} is not YYYY-MM-DDTHH:MM:SSZ`);
  if (!Number.isSafeInteger(body.version) || (body.version as number) < 1)
    throw malformed('version must be a positive integer');
  const info = body['x-ferry-bundle'];
  if (
    typeof info !== 'object' ||
    info === null ||
    (info.type !== 'ci' && info.type !== 'prod') ||
    typeof info.tag !== 'string' ||
    !Array.isArray(info.targets) ||
    !info.targets.every((name) => typeof name === 'string')
  ) {
    throw malformed('x-ferry-bundle needs type ("ci" or "prod"), tag and a list of target names');
  }

  const role = root.roles['targets'];
  if (role === undefined) throw new FerryError('SECURITY_ERROR', 'root.json defines no targets role');
  const valid = new Set<string>();
  for (const entry of signatures as unknown[]) {
    const { keyid, sig } = (entry ?? {}) as { keyid?: unknown; sig?: unknown };
    if (typeof keyid !== 'string' || typeof sig !== 'string') continue;
    if (!role.keyIDs.includes(keyid) || valid.has(keyid)) continue;
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
  if (valid.size < role.threshold) {
    throw new FerryError(
      'SECURITY_ERROR',
      `${BUNDLE_TARGETS_FILE}: ${valid.size} valid signature(s) from targets keys, threshold is ${role.threshold}`,
    );
  }
  if (now.getTime() >= expires.getTime()) {
    throw new FerryError('METADATA_EXPIRED', `${BUNDLE_TARGETS_FILE} expired at ${body.expires}`);
  }
  return { type: info.type, tag: info.tag, targets: [...info.targets], expires, version: body.version as number };
}
