import { FerryError, describeCause } from '../errors.js';

/**
 * tuf-js reports snapshot and targets failures as a RuntimeError whose message embeds the original error's name
 * ("Unable to load snapshot metadata error ExpiredMetadataError: …"), so the class survives only as text. This maps
 * both the real classes and those embedded names to ferry outcomes, most specific first.
 */
const RULES: ReadonlyArray<{ pattern: RegExp; outcome: FerryError['outcome'] }> = [
  { pattern: /ExpiredMetadataError|is expired/, outcome: 'METADATA_EXPIRED' },
  { pattern: /DownloadHTTPError|not found in the bundle/, outcome: 'METADATA_NOT_FOUND' },
  {
    pattern: /UnsignedMetadataError|LengthOrHashMismatchError|BadVersionError|EqualVersionError|threshold|signature/i,
    outcome: 'SECURITY_ERROR',
  },
  { pattern: /DownloadLengthMismatchError|exceeds \d+ bytes|more than the \d+ bytes/, outcome: 'METADATA_MALFORMED' },
  { pattern: /SyntaxError|ValueError|TypeError|JSON|is not defined|must be/, outcome: 'METADATA_MALFORMED' },
  // Anything else tuf-js's trusted set rejects (wrong _type, missing meta, mix-and-match) is a security refusal.
  { pattern: /RepositoryError|Expected '|Missing|does not match|doesn't match/, outcome: 'SECURITY_ERROR' },
];

export function classifyTufError(error: unknown): FerryError {
  if (error instanceof FerryError) return error;
  const name = error instanceof Error ? error.name : '';
  const text = `${name}: ${describeCause(error)}`;
  for (const rule of RULES) {
    if (rule.pattern.test(text)) {
      return new FerryError(rule.outcome, `TUF metadata refused: ${describeCause(error)}`, { cause: error });
    }
  }
  return new FerryError('SECURITY_ERROR', `TUF metadata refused: ${describeCause(error)}`, { cause: error });
}
