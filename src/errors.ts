import type { Outcome } from './exit-codes.js';

/**
 * Every refusal and failure ferry reports is a FerryError: an outcome name from the one exit-code table, a one-line
 * reason for stderr, and the underlying cause for the log. Code that catches a FerryError never has to parse text.
 */
export class FerryError extends Error {
  readonly outcome: Outcome;
  readonly detail: Record<string, unknown> | undefined;

  constructor(outcome: Outcome, message: string, options: { cause?: unknown; detail?: Record<string, unknown> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FerryError';
    this.outcome = outcome;
    this.detail = options.detail;
  }
}

/** One line, whatever was thrown: stderr and the status record take exactly one line per refusal. */
export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' | ').trim();
}

export function describeCause(error: unknown): string {
  if (error instanceof Error) {
    const stderr = (error as { stderr?: unknown }).stderr;
    if (typeof stderr === 'string' && stderr.trim() !== '') return oneLine(stderr);
    return oneLine(error.message);
  }
  return oneLine(String(error));
}
