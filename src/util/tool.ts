import { execa, type Options } from 'execa';

/**
 * The one way ferry runs an external tool (ostree, fw_setenv, grub-editenv…). Output is captured, never inherited,
 * so a tool's chatter cannot corrupt `--json` output, and a failure carries the tool's own stderr as its message.
 */
export async function runTool(file: string, args: readonly string[], options: Options = {}): Promise<string> {
  const stdin = options.input === undefined ? { stdin: 'ignore' as const } : {};
  const result = await execa(file, args, { ...stdin, ...options, reject: false, encoding: 'utf8' });
  if (result.failed) {
    const stderr = typeof result.stderr === 'string' ? result.stderr.trim() : '';
    const reason = stderr !== '' ? stderr : result.shortMessage;
    throw new ToolError(`${file} ${args.join(' ')}: ${reason}`, file, stderr, result.exitCode);
  }
  return typeof result.stdout === 'string' ? result.stdout : '';
}

export class ToolError extends Error {
  constructor(
    message: string,
    readonly tool: string,
    readonly stderr: string,
    readonly exitCode: number | undefined,
  ) {
    super(message);
    this.name = 'ToolError';
  }
}
