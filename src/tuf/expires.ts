/**
 * TUF dates are `YYYY-MM-DDTHH:MM:SSZ`, nothing else: python-tuf rejects milliseconds, and @tufjs/models takes an
 * unparseable date as "never expires". So every expiry is checked here before any metadata is trusted.
 */
const EXPIRES_FORMAT = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z$/;

export function parseExpires(value: unknown): Date | undefined {
  if (typeof value !== 'string') return undefined;
  const match = EXPIRES_FORMAT.exec(value);
  if (match === null) return undefined;
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return undefined;
  // Reject dates that Date silently rolls over, such as 2026-02-31.
  if (formatExpires(date) !== value) return undefined;
  return date;
}

export function formatExpires(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function expiresInDays(now: Date, days: number): string {
  return formatExpires(new Date(Math.floor(now.getTime() / 1000) * 1000 + days * 86_400_000));
}
