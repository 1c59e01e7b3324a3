import { promises as fs } from 'node:fs';
import { FerryError } from '../errors.js';
import { runTool } from '../util/tool.js';
import type { BootloaderConfig } from './config.js';

/**
 * The bootloader's environment, read and written only through the bootloader's own tools (fw_printenv/fw_setenv
 * for U-Boot), so a file-backed env in the simulator and the real flash on hardware take the same code path.
 */
export interface BootloaderEnv {
  readonly description: string;
  read(): Promise<Record<string, string>>;
  /** Sets (string) or deletes (null) several variables in one write. */
  update(changes: Record<string, string | null>): Promise<void>;
}

export class UbootEnv implements BootloaderEnv {
  constructor(readonly fwEnvConfig: string) {}

  get description(): string {
    return `U-Boot env (${this.fwEnvConfig})`;
  }

  async read(): Promise<Record<string, string>> {
    const out = await runTool('fw_printenv', ['-c', this.fwEnvConfig]);
    const vars: Record<string, string> = {};
    for (const line of out.split('\n')) {
      const eq = line.indexOf('=');
      if (eq > 0) vars[line.slice(0, eq)] = line.slice(eq + 1);
    }
    return vars;
  }

  async update(changes: Record<string, string | null>): Promise<void> {
    // Script mode (-s -) applies every change in one write of the environment. libubootenv 0.3 reads
    // "name=value" lines, and "name=" deletes; it skips lines it does not understand without an error,
    // so the result is read back and checked.
    const script = Object.entries(changes)
      .map(([name, value]) => `${name}=${value ?? ''}`)
      .join('\n');
    await runTool('fw_setenv', ['-c', this.fwEnvConfig, '-s', '-'], { input: `${script}\n` });
    const written = await this.read();
    for (const [name, value] of Object.entries(changes)) {
      if ((written[name] ?? null) !== value)
        throw new Error(`fw_setenv did not set ${name}=${value ?? '(deleted)'} in ${this.fwEnvConfig}`);
    }
  }

  /** The env file(s) named by fw_env.config: what a test hashes as "the bootloader state". */
  async envFiles(): Promise<string[]> {
    const config = await fs.readFile(this.fwEnvConfig, 'utf8');
    return config
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'))
      .map((line) => line.split(/\s+/)[0]!);
  }
}

export function bootloaderEnvFor(config: BootloaderConfig): BootloaderEnv {
  switch (config.kind) {
    case 'uboot':
      return new UbootEnv(config.fwEnvConfig);
    case 'grub':
      throw new FerryError(
        'CONFIG_INVALID',
        '[bootloader] rollback_mode "grub" is not supported yet; use "uboot_masked"',
      );
  }
}

/** The variables ferry reads, with the meaning U-Boot gives them (reference §8). */
export interface BootFlags {
  readonly upgradeAvailable: boolean;
  readonly bootcount: number;
  readonly bootUpgradeAvailable: boolean;
}

export function bootFlagsOf(vars: Record<string, string>): BootFlags {
  return {
    upgradeAvailable: vars['upgrade_available'] === '1',
    bootcount: Number.parseInt(vars['bootcount'] ?? '0', 10) || 0,
    bootUpgradeAvailable: vars['bootupgrade_available'] === '1',
  };
}
