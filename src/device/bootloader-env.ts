import { promises as fs } from 'node:fs';
import path from 'node:path';
import { syncDirectory } from '../util/atomic-file.js';
import { settleFilesystemJournalOf } from '../util/sync-filesystem.js';
import { runTool } from '../util/tool.js';
import type { BootloaderConfig } from './config.js';

/**
 * The bootloader's environment, read and written only through the bootloader's own tools (fw_printenv/fw_setenv
 * for U-Boot, grub-editenv for GRUB), so a file-backed env in the simulator and the real one on hardware take the
 * same code path.
 */
export interface BootloaderEnv {
  readonly description: string;
  read(): Promise<Record<string, string>>;
  /** Sets (string) or deletes (null) several variables. */
  update(changes: Record<string, string | null>): Promise<void>;
}

/** Checks that a write took: both tools skip some input silently. */
async function verifyWritten(env: BootloaderEnv, changes: Record<string, string | null>): Promise<void> {
  const written = await env.read();
  for (const [name, value] of Object.entries(changes)) {
    if ((written[name] ?? null) !== value)
      throw new Error(`${env.description}: ${name} is not ${value ?? '(deleted)'} after the write`);
  }
}

function parseAssignments(out: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) vars[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return vars;
}

/**
 * fw_setenv rewrites an env copy in place: with one copy, a power cut during the write leaves a copy whose crc fails,
 * and the whole env (the boot trial with it) is lost. A device therefore keeps a redundant env, two copies named on
 * two lines of fw_env.config: libubootenv writes only the copy not in use, with a newer flags byte, so the other one
 * survives any cut (boot/u-boot/boot.cmd reads and writes them the same way).
 */
export class UbootEnv implements BootloaderEnv {
  constructor(readonly fwEnvConfig: string) {}

  get description(): string {
    return `U-Boot env (${this.fwEnvConfig})`;
  }

  async read(): Promise<Record<string, string>> {
    return parseAssignments(await runTool('fw_printenv', ['-c', this.fwEnvConfig]));
  }

  async update(changes: Record<string, string | null>): Promise<void> {
    // Script mode (-s -) applies every change in one write of the environment. libubootenv 0.3 reads
    // "name=value" lines, and "name=" deletes.
    const script = Object.entries(changes)
      .map(([name, value]) => `${name}=${value ?? ''}`)
      .join('\n');
    await runTool('fw_setenv', ['-c', this.fwEnvConfig, '-s', '-'], { input: `${script}\n` });
    await verifyWritten(this, changes);
  }
}

export class GrubEnv implements BootloaderEnv {
  constructor(readonly file: string) {}

  get description(): string {
    return `GRUB env (${this.file})`;
  }

  async read(): Promise<Record<string, string>> {
    return parseAssignments(await runTool('grub-editenv', [this.file, 'list']));
  }

  /**
   * grub-editenv rewrites its file in place (open with O_TRUNC, then write): a power cut between the two leaves an
   * empty or partial grubenv, which GRUB's load_env rejects, so the boot trial is lost and a broken deployment
   * boots again and again. So it edits a copy beside grubenv, and the copy, once synced, is renamed over it: the
   * rename is atomic, and a cut leaves the old env or the new one. GRUB reads /boot without replaying its journal,
   * where the rename lives after the directory's fsync: the journal is written back into place (as after a deploy),
   * or a cut in the next seconds leaves GRUB reading, and save_env writing, the old file's blocks.
   */
  async update(changes: Record<string, string | null>): Promise<void> {
    const set = Object.entries(changes).filter(([, value]) => value !== null);
    const unset = Object.entries(changes).filter(([, value]) => value === null);
    const staged = path.join(path.dirname(this.file), `.${path.basename(this.file)}.new`);
    await fs.copyFile(this.file, staged);
    try {
      if (set.length > 0)
        await runTool('grub-editenv', [staged, 'set', ...set.map(([name, value]) => `${name}=${value}`)]);
      if (unset.length > 0) await runTool('grub-editenv', [staged, 'unset', ...unset.map(([name]) => name)]);
      const handle = await fs.open(staged, 'r+');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
      await fs.rename(staged, this.file);
    } catch (error) {
      await fs.rm(staged, { force: true });
      throw error;
    }
    await syncDirectory(path.dirname(this.file));
    await settleFilesystemJournalOf(this.file);
    await verifyWritten(this, changes);
  }
}

/** The variable names each bootloader uses for the same ideas. */
export interface BootVariables {
  readonly upgradeAvailable: string;
  readonly bootCounter: string;
  readonly bootLimit: string;
  readonly bootUpgradeAvailable: string;
  readonly rollback: string;
}

export const UBOOT_VARIABLES: BootVariables = {
  upgradeAvailable: 'upgrade_available',
  bootCounter: 'bootcount',
  bootLimit: 'bootlimit',
  bootUpgradeAvailable: 'bootupgrade_available',
  rollback: 'rollback',
};

export const GRUB_VARIABLES: BootVariables = {
  upgradeAvailable: 'upgrade_available',
  bootCounter: 'boot_counter',
  bootLimit: 'bootlimit',
  bootUpgradeAvailable: 'bootupgrade_available',
  rollback: 'rollback',
};

/** Where the boot counting of boot/grub/grub.cfg and boot/u-boot/boot.cmd stops: bootlimit can be 1 to 8. */
export const MAX_BOOT_COUNT = 9;

export interface BootFlags {
  readonly upgradeAvailable: boolean;
  readonly bootcount: number;
  readonly bootUpgradeAvailable: boolean;
}

/**
 * Boot counting in words rather than variable names: a trial boot of a new deployment, its confirmation, and what
 * the bootloader itself does at power-on (used by the simulator). One class for both backends.
 */
export class BootControl {
  constructor(
    readonly env: BootloaderEnv,
    readonly vars: BootVariables,
  ) {}

  get description(): string {
    return this.env.description;
  }

  async flags(): Promise<BootFlags & { bootlimit: number; rolledBack: boolean }> {
    const vars = await this.env.read();
    return {
      upgradeAvailable: vars[this.vars.upgradeAvailable] === '1',
      bootcount: Number.parseInt(vars[this.vars.bootCounter] ?? '0', 10) || 0,
      bootUpgradeAvailable: vars[this.vars.bootUpgradeAvailable] === '1',
      bootlimit: Number.parseInt(vars[this.vars.bootLimit] ?? '3', 10),
      rolledBack: vars[this.vars.rollback] === '1',
    };
  }

  /** The next boots are a trial of a new default deployment: count them, fall back past the limit. */
  startTrial(): Promise<void> {
    return this.env.update({ [this.vars.upgradeAvailable]: '1', [this.vars.bootCounter]: '0' });
  }

  /** Counting starts over while the trial stays armed: the next boots are not counted against the default entry. */
  resetBootCount(): Promise<void> {
    return this.env.update({ [this.vars.bootCounter]: '0' });
  }

  /** The trial is over (committed, or its failure recorded): stop counting. */
  endTrial(): Promise<void> {
    return this.env.update({
      [this.vars.upgradeAvailable]: '0',
      [this.vars.bootCounter]: '0',
      [this.vars.rollback]: '0',
    });
  }

  /**
   * What the bootloader does at power-on while a trial runs. The shipped scripts (boot/) have no arithmetic and count
   * by a table that stops at 9 (MAX_BOOT_COUNT), so the count stops there too.
   */
  async countBoot(): Promise<number> {
    const count = Math.min((await this.flags()).bootcount + 1, MAX_BOOT_COUNT);
    await this.env.update({ [this.vars.bootCounter]: String(count) });
    return count;
  }

  markFellBack(): Promise<void> {
    return this.env.update({ [this.vars.rollback]: '1' });
  }

  setBootUpgradeAvailable(value: boolean): Promise<void> {
    return this.env.update({ [this.vars.bootUpgradeAvailable]: value ? '1' : '0' });
  }
}

export function bootControlFor(config: BootloaderConfig): BootControl {
  switch (config.kind) {
    case 'uboot':
      return new BootControl(new UbootEnv(config.fwEnvConfig), UBOOT_VARIABLES);
    case 'grub':
      return new BootControl(new GrubEnv(config.grubEnvFile), GRUB_VARIABLES);
  }
}
