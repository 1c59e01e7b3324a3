import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

/**
 * Runs the openssl command line: what a third party reads of the requests and certificates ferry writes. A non-zero
 * exit is returned with its output; openssl missing (ENOENT) throws, so a test fails rather than passes without it.
 */
export async function openssl(...args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)('openssl', args);
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failed = error as { code?: number | string; stdout?: string; stderr?: string };
    if (typeof failed.code !== 'number') throw error;
    return { code: failed.code, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` };
  }
}
