import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { commandPath } from '../../src/cli/command-context.js';
import { leafCommands, outcomesOf } from '../../src/cli/help.js';
import { buildProgram } from '../../src/cli/program.js';
import { OUTCOMES } from '../../src/exit-codes.js';
import { akliteOffline, cli } from '../support/cli.js';
import { tempDir } from '../support/factory.js';

const silentIo = { stdout: () => {}, stderr: () => {} };
const commandsOf = (name: 'ferry' | 'aklite-offline'): Command[] =>
  leafCommands(buildProgram(name, silentIo, () => {}));

/** The codes listed under "Exit codes:" in a help text; each section counted. */
function helpCodes(help: string): { sections: number; codes: number[] } {
  const sections = help.split('\nExit codes:\n');
  const rows = (sections[1] ?? '').split('\n').filter((line) => /^\s+\d+ {2}/.test(line));
  return { sections: sections.length - 1, codes: rows.map((line) => Number(line.trim().split(' ')[0])) };
}

test("every command's --help lists exactly the exit codes the table assigns it", async () => {
  for (const [name, run] of [
    ['ferry', cli],
    ['aklite-offline', akliteOffline],
  ] as const) {
    for (const command of commandsOf(name)) {
      const words = commandPath(command).split(' ');
      const help = await run(...words, '--help');
      assert.equal(help.code, 0, `${name} ${words.join(' ')} --help`);
      const listed = helpCodes(help.stdout);
      assert.equal(listed.sections, 1, `${name} ${words.join(' ')} --help has one exit-code section`);
      assert.deepEqual(
        listed.codes,
        outcomesOf(commandPath(command)).map((info) => info.exitCode),
        `${name} ${words.join(' ')} --help`,
      );
    }
  }
});

test('the exit-code table names only commands (or groups of commands) the program has', () => {
  const names = new Set(
    [...commandsOf('ferry'), ...commandsOf('aklite-offline')].flatMap((command) => {
      const words = commandPath(command).split(' ');
      return words.map((_, index) => words.slice(0, index + 1).join(' '));
    }),
  );
  for (const [outcome, info] of Object.entries(OUTCOMES)) {
    for (const entry of info.commands) assert.ok(entry === '*' || names.has(entry), `${outcome} names "${entry}"`);
  }
});

test('device provision and device register each list their own codes; app add lists 40', async () => {
  const codes = async (...words: string[]) => helpCodes((await cli(...words, '--help')).stdout).codes;
  const provision = await codes('device', 'provision');
  const register = await codes('device', 'register');
  assert.ok(provision.includes(56) && !provision.includes(55), `provision: ${provision.join(' ')}`);
  assert.ok(register.includes(55) && !register.includes(56), `register: ${register.join(' ')}`);
  assert.ok(!provision.includes(40), 'provision does not read the factory repository');
  assert.ok((await codes('app', 'add')).includes(40));
  for (const words of [['status'], ['repo', 'init'], ['target', 'add'], ['sim', 'create'], ['sim', 'image']]) {
    assert.ok((await codes(...words)).length > 3, `${words.join(' ')} --help lists its codes`);
  }
});

test('a bad command line with --json prints one JSON object with outcome USAGE, and one line on stderr', async () => {
  for (const args of [
    ['install', '--json'],
    ['install', '--src-dir', 'x', '--bogus', '--json'],
    ['export', 'only-one-argument', '--json'],
    ['sim', 'create', 'dir', '--repo', 'r', '--target', 't', '--bootloader', 'lilo', '--json'],
  ]) {
    const result = await cli(...args);
    assert.equal(result.code, 2, args.join(' '));
    const printed = JSON.parse(result.stdout) as Record<string, unknown>;
    assert.equal(printed['outcome'], 'USAGE', args.join(' '));
    assert.equal(printed['exitCode'], 2);
    assert.equal(typeof printed['message'], 'string');
    const lines = result.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, result.stderr);
    assert.equal(lines[0], `ferry: ${printed['message'] as string}`);
  }
});

test('a mistyped option is reported as unknown, with the close one suggested, not as a missing one', async () => {
  const result = await cli('install', '--srcdir', '/media/stick');
  assert.equal(result.code, 2);
  assert.equal(result.stdout, '');
  assert.match(result.stderr, /^ferry: unknown option '--srcdir' \(did you mean --src-dir\?\)/);
  assert.doesNotMatch(result.stderr, /required/);
  assert.equal(result.stderr.trimEnd().split('\n').length, 1, result.stderr);
  // A required option that is really missing is still reported as such.
  const missing = await cli('install');
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /^ferry: required option '--src-dir <path>' not specified/);
});

test('the built command lines run from a directory on the PATH, through a symlink, as the README says', async () => {
  const bin = await tempDir('path');
  for (const name of ['ferry', 'aklite-offline']) {
    const entry = fileURLToPath(new URL(`../../src/cli/${name}.js`, import.meta.url));
    await fs.symlink(entry, path.join(bin, name));
    const result = spawnSync(name, ['--help'], {
      encoding: 'utf8',
      env: { ...process.env, PATH: `${bin}${path.delimiter}${path.dirname(process.execPath)}` },
    });
    assert.equal(result.status, 0, `${name}: ${result.error?.message ?? result.stderr}`);
    assert.match(result.stdout, new RegExp(`^Usage: ${name} `));
  }
});
