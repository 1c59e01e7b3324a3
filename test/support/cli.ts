import { run } from '../../src/cli/program.js';

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the real command-line program in-process, capturing what it prints. */
export async function cli(...args: string[]): Promise<CliResult> {
  return runAs('ferry', args);
}

export async function akliteOffline(...args: string[]): Promise<CliResult> {
  return runAs('aklite-offline', args);
}

async function runAs(name: 'ferry' | 'aklite-offline', args: string[]): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await run(name, args, { stdout: (text) => (stdout += text), stderr: (text) => (stderr += text) });
  return { code, stdout, stderr };
}
