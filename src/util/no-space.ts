import { ToolError } from './tool.js';

/**
 * Whether `error`, or anything in its cause chain, says a filesystem filled up: node's ENOSPC, or a tool (ostree)
 * that said so on stderr, including ostree's own free-space reserve.
 */
export function isNoSpace(error: unknown): boolean {
  for (let cause = error, depth = 0; cause !== undefined && depth < 8; depth++) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOSPC') return true;
    if (cause instanceof ToolError && /No space left on device|min-free-space.* would be exceeded/i.test(cause.stderr))
      return true;
    if (cause instanceof Error && /ENOSPC|No space left on device/.test(cause.message)) return true;
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return false;
}
