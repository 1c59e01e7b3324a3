// Neither package re-exports its error classes from its index.
import * as modelErrors from '@tufjs/models/dist/error.js';
import {
  BadVersionError,
  DownloadHTTPError,
  DownloadLengthMismatchError,
  ExpiredMetadataError,
  RepositoryError,
  RuntimeError,
  ValueError,
} from 'tuf-js/dist/error.js';
import { FerryError, describeCause } from '../errors.js';

type Outcome = FerryError['outcome'];
type ErrorClass = abstract new (...args: never[]) => Error;

/**
 * What each tuf-js (and @tufjs/models) error class means for a device, most specific first: subclasses come before
 * the classes they extend (EqualVersionError is a BadVersionError; both, like ExpiredMetadataError, are
 * RepositoryErrors). A class not listed is a failed check of its own kind: SECURITY_ERROR.
 */
const CLASS_RULES: ReadonlyArray<{ kinds: readonly ErrorClass[]; outcome: Outcome; check: string }> = [
  { kinds: [ExpiredMetadataError], outcome: 'METADATA_EXPIRED', check: 'expired' },
  { kinds: [DownloadHTTPError], outcome: 'METADATA_NOT_FOUND', check: 'missing' },
  { kinds: [DownloadLengthMismatchError], outcome: 'METADATA_MALFORMED', check: 'too large' },
  { kinds: [modelErrors.UnsignedMetadataError], outcome: 'SECURITY_ERROR', check: 'signature check failed' },
  { kinds: [BadVersionError], outcome: 'SECURITY_ERROR', check: 'version check failed' },
  { kinds: [modelErrors.LengthOrHashMismatchError], outcome: 'SECURITY_ERROR', check: 'hash check failed' },
  {
    kinds: [SyntaxError, TypeError, ValueError, modelErrors.ValueError],
    outcome: 'METADATA_MALFORMED',
    check: 'malformed',
  },
  {
    kinds: [RepositoryError, modelErrors.RepositoryError, modelErrors.CryptoError],
    outcome: 'SECURITY_ERROR',
    check: 'metadata check failed',
  },
];

/**
 * tuf-js reports snapshot and targets failures as a RuntimeError whose message embeds the original error as text
 * ("Unable to load snapshot metadata error Error: snapshot.json is expired"): it drops the error itself (no `cause`),
 * and its error classes set no `name`, so even the class name is lost. For those alone the kind of failure survives
 * only in the words of the message, which these rules map to an outcome. Most specific rules first.
 */
const WRAPPED_TEXT_RULES: ReadonlyArray<{ pattern: RegExp; outcome: Outcome; check: string }> = [
  { pattern: /is expired/, outcome: 'METADATA_EXPIRED', check: 'expired' },
  { pattern: /not found in the bundle/, outcome: 'METADATA_NOT_FOUND', check: 'missing' },
  {
    pattern: /signed by \d+\/\d+ keys|signature/i,
    outcome: 'SECURITY_ERROR',
    check: 'signature check failed',
  },
  {
    pattern: /version .* (is )?less than|does not match snapshot|doesn't match timestamp|Expected version/i,
    outcome: 'SECURITY_ERROR',
    check: 'version check failed',
  },
  { pattern: /Expected (length|hash)|Hash algorithm/, outcome: 'SECURITY_ERROR', check: 'hash check failed' },
  { pattern: /exceeds \d+ bytes|more than the \d+ bytes/, outcome: 'METADATA_MALFORMED', check: 'too large' },
  {
    pattern: /SyntaxError|JSON|is not defined|must be|malformed|expected '/,
    outcome: 'METADATA_MALFORMED',
    check: 'malformed',
  },
];

/** Which metadata file the failure is about, for the one-line reason (the outcome never depends on it). */
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

function ruleFor(error: unknown, text: string): { outcome: Outcome; check: string } {
  if (error instanceof RuntimeError) {
    const inner = innerMessage(text);
    return WRAPPED_TEXT_RULES.find((rule) => rule.pattern.test(inner)) ?? RUNTIME_FALLBACK;
  }
  return CLASS_RULES.find((rule) => rule.kinds.some((kind) => error instanceof kind)) ?? RUNTIME_FALLBACK;
}

const RUNTIME_FALLBACK = { outcome: 'SECURITY_ERROR' as const, check: 'metadata check failed' };

/**
 * `step`: the metadata file being read when it failed, for a message that names none (a parse error); a message
 * that names a role is about that role (reading timestamp.json fails when the newest root has expired).
 */
export function classifyTufError(error: unknown, step?: string): FerryError {
  if (error instanceof FerryError) return error;
  const text = describeCause(error);
  const rule = ruleFor(error, text);
  const file = fileOf(text) ?? step;
  return new FerryError(rule.outcome, `${file ? `tuf/${file}: ` : ''}${rule.check}: ${innerMessage(text)}`, {
    cause: error,
  });
}
