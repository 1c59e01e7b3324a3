import { promises as fs } from 'node:fs';
import path from 'node:path';
import { UbootEnv } from '../../src/device/bootloader-env.js';
import { tempDir } from './factory.js';

/**
 * A U-Boot env write torn the way a power cut tears it: part of the new bytes on disk over the old ones. Used on
 * file-backed envs (fw_env.config naming one copy or two).
 */

export async function writeFwEnvConfig(dir: string, copies: readonly string[]): Promise<string> {
  const config = path.join(dir, 'fw_env.config');
  await fs.writeFile(config, copies.map((copy) => `${copy} 0x0 0x4000\n`).join(''));
  return config;
}

/** The copies an fw_env.config names, in its order. */
export async function envCopies(fwEnvConfig: string): Promise<string[]> {
  return (await fs.readFile(fwEnvConfig, 'utf8'))
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => line.split(/\s+/)[0]!);
}

/**
 * The bytes fw_setenv would write for `changes`, and the copy it would write them to: the same write, done on a
 * scratch copy of the env.
 */
export async function nextWrite(
  copies: readonly string[],
  changes: Record<string, string>,
): Promise<{ copy: string; bytes: Buffer }> {
  const scratch = await tempDir('env-scratch');
  const scratchCopies = [];
  for (const copy of copies) {
    const target = path.join(scratch, path.basename(copy));
    await fs.copyFile(copy, target);
    scratchCopies.push(target);
  }
  await new UbootEnv(await writeFwEnvConfig(scratch, scratchCopies)).update(changes);
  for (const [index, copy] of copies.entries()) {
    const bytes = await fs.readFile(scratchCopies[index]!);
    if (!bytes.equals(await fs.readFile(copy))) return { copy, bytes };
  }
  throw new Error('the write changed no copy');
}

/**
 * The cut: the header (crc, and the flags byte of a redundant copy: `headerSize` 5, else 4) and half of the
 * variables of the new copy are on disk; the rest is still the old copy.
 */
export async function tearWrite(copy: string, bytes: Buffer, headerSize: 4 | 5): Promise<void> {
  const dataLength = bytes.indexOf(Buffer.from([0, 0]), headerSize) - headerSize;
  const torn = Buffer.from(await fs.readFile(copy));
  bytes.copy(torn, 0, 0, headerSize + Math.floor(dataLength / 2));
  await fs.writeFile(copy, torn);
}
