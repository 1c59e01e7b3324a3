import { FerryError } from '../../errors.js';

/** The two TUF formats a stick may carry: ferry's (spec TUF, read by tuf-js) and Foundries' (fioctl / aktualizr). */
export type StickFormat = 'ferry' | 'foundries';

/** `_type` as each format writes it: TUF spells the roles in lower case, aktualizr capitalises them. */
const TYPES: Readonly<Record<string, StickFormat>> = {
  root: 'ferry',
  timestamp: 'ferry',
  bundle: 'ferry',
  Root: 'foundries',
  Timestamp: 'foundries',
  Targets: 'foundries',
};

/** The files that tell the formats apart, and what each format calls their `_type`. */
function voteOf(name: string, bytes: Uint8Array): StickFormat | undefined {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return undefined;
  }
  const type = (json as { signed?: { _type?: unknown } } | null)?.signed?._type;
  if (typeof type !== 'string') return undefined;
  const format = TYPES[type];
  // bundle-targets.json is "bundle" in ferry's format and "Targets" in Foundries'; the roots and the timestamp are
  // their own role in both.
  if (name === 'bundle-targets.json') return type === 'bundle' || type === 'Targets' ? format : undefined;
  return type.toLowerCase() === name.replace(/^\d+\./, '').replace(/\.json$/, '') ? format : undefined;
}

/**
 * Tells a Foundries stick from a ferry one by its metadata: the `_type` of its timestamp.json, its roots and its
 * bundle-targets.json. Pure; the caller passes the `tuf/` files it read. A stick whose files name neither format,
 * or both, is refused as malformed: which verifier reads it must never be a guess.
 */
export function detectStickFormat(files: ReadonlyMap<string, Uint8Array>): StickFormat {
  const names = [...files.keys()].filter(
    (name) => name === 'timestamp.json' || name === 'bundle-targets.json' || /^\d+\.root\.json$/.test(name),
  );
  if (names.length === 0) {
    throw new FerryError(
      'METADATA_NOT_FOUND',
      'tuf/: no timestamp.json, N.root.json or bundle-targets.json on the stick',
    );
  }
  const votes = new Set(names.map((name) => voteOf(name, files.get(name)!)));
  votes.delete(undefined);
  if (votes.size === 1) return [...votes][0]!;
  throw new FerryError(
    'METADATA_MALFORMED',
    votes.size === 0
      ? `tuf/: neither a ferry nor a Foundries stick: the _type of ${names.sort().join(', ')} is none either format writes`
      : 'tuf/: the metadata mixes the ferry and the Foundries format',
  );
}
