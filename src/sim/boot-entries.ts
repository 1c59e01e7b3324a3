import { promises as fs } from 'node:fs';
import path from 'node:path';

/** One Boot Loader Specification entry, as ostree writes them under boot/loader/entries. */
export interface BootEntry {
  readonly file: string;
  readonly title: string;
  readonly version: number;
  readonly options: string;
}

export function parseBootEntry(file: string, text: string): BootEntry {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^(\S+)\s+(.*)$/.exec(line.trim());
    if (match) fields.set(match[1]!, match[2]!);
  }
  return {
    file,
    title: fields.get('title') ?? file,
    version: Number.parseInt(fields.get('version') ?? '0', 10),
    options: fields.get('options') ?? '',
  };
}

/** Entries in the order a bootloader offers them: highest version first, so [0] is the default, [1] the rollback. */
export async function readBootEntries(sysroot: string): Promise<BootEntry[]> {
  const dir = path.join(sysroot, 'boot', 'loader', 'entries');
  const names = (await fs.readdir(dir)).filter((name) => name.endsWith('.conf'));
  const entries = await Promise.all(
    names.map(async (name) => parseBootEntry(name, await fs.readFile(path.join(dir, name), 'utf8'))),
  );
  return entries.sort((a, b) => b.version - a.version);
}
