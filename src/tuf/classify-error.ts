import { FerryError, describeCause } from '../errors.js';

/**
 * tuf-js reports snapshot and targets failures as a RuntimeError whose message embeds the original error
 * ("Unable to load snapshot metadata error ExpiredMetadataError: …"), and its UnsignedMetadataError prints as a plain
 * "Error". So the kind of failure survives only as text: this maps that text to a ferry outcome and a one-line
 * reason naming the file and the check that failed. Most specific rules first.
 */
const RULES: ReadonlyArray<{ pattern: RegExp; outcome: FerryError['outcome']; check: string }> = [
  { pattern: /ExpiredMetadataError|is expired/, outcome: 'METADATA_EXPIRED', check: 'expired' },
  { pattern: /DownloadHTTPError|not found in the bundle/, outcome: 'METADATA_NOT_FOUND', check: 'missing' },
  {
    pattern: /signed by \d+\/\d+ keys|UnsignedMetadataError|signature/i,
    outcome: 'SECURITY_ERROR',
    check: 'signature check failed',
  },
  {
    pattern:
      /BadVersionError|EqualVersionError|version .* (is )?less than|does not match snapshot|doesn't match timestamp|Expected version/i,
    outcome: 'SECURITY_ERROR',
    check: 'version check failed',
  },
  { pattern: /LengthOrHashMismatchError/, outcome: 'SECURITY_ERROR', check: 'hash check failed' },
  {
    pattern: /DownloadLengthMismatchError|exceeds \d+ bytes|more than the \d+ bytes/,
    outcome: 'METADATA_MALFORMED',
    check: 'too large',
  },
  {
    pattern: /SyntaxError|ValueError|TypeError|JSON|is not defined|must be/,
    outcome: 'METADATA_MALFORMED',
    check: 'malformed',
  },
  { pattern: /RepositoryError|Expected '|Missing/, outcome: 'SECURITY_ERROR', check: 'metadata check failed' },
];

function fileOf(text: string): string | undefined {
  const wrapped = /Unable to load (snapshot|targets)/.exec(text);
  if (wrapped) return `${wrapped[1]}.json`;
  const named = /\b(root|timestamp|snapshot|targets)(\.json)?\b/.exec(text);
  return named ? `${named[1]}.json` : undefined;
}

/** The innermost message, without tuf-js's wrapper and class-name prefixes. */
function innerMessage(text: string): string {
  return text.replace(/^Unable to load \w+( metadata)? error /, '').replace(/^(\w*Error): /, '');
}

export function classifyTufError(error: unknown): FerryError {
  if (error instanceof FerryError) return error;
  const name = error instanceof Error ? error.name : '';
  const text = describeCause(error);
  const rule = RULES.find((candidate) => candidate.pattern.test(`${name}: ${text}`)) ?? {
    outcome: 'SECURITY_ERROR' as const,
    check: 'metadata check failed',
  };
  const file = fileOf(text);
  return new FerryError(rule.outcome, `${file ? `tuf/${file}: ` : ''}${rule.check}: ${innerMessage(text)}`, {
    cause: error,
  });
}
