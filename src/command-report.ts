import { FerryError, describeCause } from './errors.js';
import type { Outcome } from './exit-codes.js';

/** What a command hands back to the entry point: an outcome from the one table, a line for people, data for --json. */
export interface CommandReport {
  readonly outcome: Outcome;
  readonly message: string;
  readonly data?: Record<string, unknown>;
}

/** The report of a command that threw: a FerryError keeps its outcome, anything else is an internal error. */
export function errorReport(error: unknown): CommandReport {
  if (error instanceof FerryError) {
    return { outcome: error.outcome, message: error.message, ...(error.detail ? { data: error.detail } : {}) };
  }
  return { outcome: 'INTERNAL_ERROR', message: describeCause(error) };
}
