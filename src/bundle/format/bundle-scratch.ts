import { randomBytes } from 'node:crypto';
import path from 'node:path';

/**
 * A new path for scratch of this process under `parent` (beside the device's storage: an unpacked archive bundle, a
 * static delta copied off the stick): `.bundle-<pid>-<random>`, which the leftovers cleanup (src/device/leftovers.ts)
 * removes once the process that made it is gone.
 */
export function bundleScratchPath(parent: string): string {
  return path.join(parent, `.bundle-${process.pid}-${randomBytes(4).toString('hex')}`);
}
