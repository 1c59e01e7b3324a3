import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildProgram } from '../src/cli/program.js';

/**
 * The source tree shows which side runs what: one file per top-level command, the workstation's and the device's
 * modules in directories of their own that do not reach into each other, and one name per idea.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SRC = path.join(ROOT, 'src');

/** Every .ts module under src/, as a path relative to the checkout (`src/apps/format/digest.ts`). */
async function sourceModules(dir = SRC): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) found.push(...(await sourceModules(full)));
    else if (entry.name.endsWith('.ts')) found.push(path.relative(ROOT, full));
  }
  return found.sort();
}

/** The modules `file` imports from within the checkout, as paths relative to it. */
async function importsOf(file: string): Promise<string[]> {
  const text = await fs.readFile(path.join(ROOT, file), 'utf8');
  return [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map((match) =>
    path.join(path.dirname(file), match[1]!).replace(/\.js$/, '.ts'),
  );
}

const topLevelCommands = (name: 'ferry' | 'aklite-offline'): string[] =>
  buildProgram(name, { stdout: () => {}, stderr: () => {} }, () => {}).commands.map((command) => command.name());

test('every top-level command has its own file in src/cli/commands/, named after it, that registers only it', async () => {
  const dir = path.join(SRC, 'cli', 'commands');
  const files = (await fs.readdir(dir)).filter((name) => name.endsWith('.ts')).sort();
  const registered = new Map<string, string[]>();
  for (const file of files) {
    const text = await fs.readFile(path.join(dir, file), 'utf8');
    registered.set(
      file,
      [...text.matchAll(/\bprogram\s*\.command\('([a-z-]+)/g)].map((match) => match[1]!),
    );
  }
  for (const [file, commands] of registered) assert.deepEqual(commands, [file.replace(/\.ts$/, '')], file);
  const commands = [...new Set([...topLevelCommands('ferry'), ...topLevelCommands('aklite-offline')])].sort();
  assert.deepEqual(
    files,
    commands.map((command) => `${command}.ts`),
  );
});

test('src/apps/ and src/bundle/ hold their modules by side: workstation/, format/ (both sides read it), device/', async () => {
  for (const dir of ['apps', 'bundle']) {
    const entries = await fs.readdir(path.join(SRC, dir), { withFileTypes: true });
    assert.deepEqual(
      entries.filter((entry) => !entry.isDirectory()).map((entry) => entry.name),
      [],
      `src/${dir}/ holds modules of no side`,
    );
    for (const entry of entries) assert.ok(['workstation', 'format', 'device'].includes(entry.name), entry.name);
  }
});

test("the bundle format's modules use neither side's; the device's modules use none of the workstation's", async () => {
  const modules = await sourceModules();
  const workstation = (file: string) => file.split(path.sep).includes('workstation') || file.startsWith('src/repo/');
  const device = (file: string) => file.split(path.sep).includes('device') || file.startsWith('src/lifecycle/');
  const crossings: string[] = [];
  for (const file of modules) {
    const format = file.split(path.sep).includes('format');
    for (const imported of await importsOf(file)) {
      if (format && (workstation(imported) || device(imported))) crossings.push(`${file} -> ${imported}`);
      if (device(file) && workstation(imported)) crossings.push(`${file} -> ${imported}`);
      if (workstation(file) && device(imported)) crossings.push(`${file} -> ${imported}`);
    }
  }
  assert.deepEqual(crossings, []);
});

test('one name per idea: outside the command files, no two modules share a name or an exported name', async () => {
  const modules = (await sourceModules()).filter((file) => !file.startsWith(path.join('src', 'cli', 'commands')));
  const byName = new Map<string, string[]>();
  const byExport = new Map<string, string[]>();
  for (const file of modules) {
    byName.set(path.basename(file), [...(byName.get(path.basename(file)) ?? []), file]);
    const text = await fs.readFile(path.join(ROOT, file), 'utf8');
    for (const match of text.matchAll(
      /^export (?:async )?(?:function\*?|const|let|class|interface|type|enum) ([A-Za-z0-9_]+)/gm,
    ))
      byExport.set(match[1]!, [...(byExport.get(match[1]!) ?? []), file]);
  }
  const shared = (map: Map<string, string[]>) => [...map].filter(([, files]) => files.length > 1);
  assert.deepEqual(shared(byName), []);
  assert.deepEqual(shared(byExport), []);
});
