import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Argument, Command, Option } from 'commander';
import { commandPath } from '../../src/cli/command-context.js';
import { leafCommands, outcomesOf } from '../../src/cli/help.js';
import { PATH_INPUTS } from '../../src/cli/path-inputs.js';
import { buildProgram, requiredOptionsOf } from '../../src/cli/program.js';
import type { PathUse } from '../../src/util/usable-path.js';
import { TAG, buildFactory, tempDir } from '../support/factory.js';
import { hashTree } from '../support/tree-hash.js';

/**
 * Every command, given a bad path in each place it takes one, answers a code the exit-code table assigns it (never
 * 1, never a signal) and one line, and returns: each run is killed if it has not ended within KILL_AFTER_MS, and a
 * killed run fails. The commands come from the program itself, so a new command is covered without being listed.
 */

const PROGRAMS = ['ferry', 'aklite-offline'] as const;
type ProgramName = (typeof PROGRAMS)[number];
const KILL_AFTER_MS = 60_000;

const silentIo = { stdout: () => {}, stderr: () => {} };
const commandsOf = (name: ProgramName): Command[] => leafCommands(buildProgram(name, silentIo, () => {}));

/** What the user writes in the place of a path: `<dir>`, `<file|dir>`, `<pem-file>`, `<file.tar|.zip>`, `<dst>`… */
const PATH_PLACEHOLDER = /(^|[-|.])(dir|file|path|bundle|media|dst)($|[-|.])/;

interface Input {
  /** The argument's name or the option's attribute name: the key of PATH_INPUTS. */
  readonly name: string;
  readonly argument?: Argument;
  readonly option?: Option;
}

function placeholderOf(option: Option): string | undefined {
  return /<([^>]+)>|\[([^\]]+)\]/
    .exec(option.flags)
    ?.slice(1)
    .find((group) => group !== undefined);
}

function pathInputsOf(command: Command): Input[] {
  return [
    ...command.registeredArguments
      .filter((argument) => PATH_PLACEHOLDER.test(argument.name()))
      .map((argument) => ({ name: argument.name(), argument })),
    ...command.options
      .filter((option) => PATH_PLACEHOLDER.test(placeholderOf(option) ?? ''))
      .map((option) => ({ name: option.attributeName(), option })),
  ];
}

function useOf(command: Command, input: Input): PathUse {
  const declared = PATH_INPUTS[commandPath(command)]?.[input.name];
  assert.ok(declared, `${commandPath(command)}: ${input.name} takes a path but PATH_INPUTS does not say what of it`);
  return (typeof declared === 'function' ? declared({}) : declared).use;
}

/** A usable path for each use, made fresh for every run so that no run sees what another wrote. */
async function goodPath(dir: string, use: PathUse): Promise<string> {
  const kind = 'reads' in use ? use.reads : use.creates;
  const target = path.join(dir, `good-${Math.random().toString(16).slice(2)}`);
  if ('creates' in use) return target;
  if (kind === 'file') await fs.writeFile(target, 'x\n');
  else await fs.mkdir(target);
  return target;
}

/** The bad paths of each kind, for a place that takes `use`. */
function badPaths(base: string, readOnlyMount: string, use: PathUse): Record<string, string> {
  const kind = 'reads' in use ? use.reads : use.creates;
  return {
    missing: path.join(base, 'no-such-dir', 'x'),
    'wrong type': kind === 'file' ? path.join(base, 'a-dir') : path.join(base, 'a-file'),
    'under a file': path.join(base, 'a-file', 'x'),
    'read-only': 'creates' in use ? path.join(readOnlyMount, 'x') : readOnlyMount,
    'dangling symbolic link': path.join(base, 'dangling-link'),
    '/proc/x': '/proc/x',
    '/dev/null': '/dev/null',
  };
}

/** A command line that commander accepts: every required argument and option, path or not. */
async function commandLine(command: Command, dir: string, bad: { input: Input; value: string }): Promise<string[]> {
  const paths = new Map(pathInputsOf(command).map((input) => [input.name, input]));
  const valueFor = async (name: string, choices: readonly string[] | undefined): Promise<string> => {
    if (name === bad.input.name) return bad.value;
    const input = paths.get(name);
    if (input !== undefined) return goodPath(dir, useOf(command, input));
    return choices?.[0] ?? 'x';
  };
  const words = commandPath(command).split(' ');
  for (const argument of command.registeredArguments) {
    if (argument.required || argument.name() === bad.input.name)
      words.push(await valueFor(argument.name(), argument.argChoices));
  }
  const options = new Set([...requiredOptionsOf(command), ...(bad.input.option ? [bad.input.option] : [])]);
  for (const option of options) words.push(option.long!, await valueFor(option.attributeName(), option.argChoices));
  return words;
}

function runProgram(name: ProgramName, args: readonly string[]) {
  const entry = fileURLToPath(new URL(`../../src/cli/${name}.js`, import.meta.url));
  const child = spawn(process.execPath, [entry, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const killer = setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>(
    (resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code, signal) => {
        clearTimeout(killer);
        resolve({ code, signal, stdout, stderr });
      });
    },
  );
}

let base = '';
let readOnlyMount = '';

before(async () => {
  base = await tempDir('bad-paths');
  await fs.writeFile(path.join(base, 'a-file'), 'not a directory\n');
  await fs.mkdir(path.join(base, 'a-dir'));
  await fs.symlink(path.join(base, 'no-such-target'), path.join(base, 'dangling-link'));
  // Root passes every permission check, so "cannot be written" is a read-only mount. Without one the test fails.
  readOnlyMount = path.join(base, 'read-only');
  await fs.mkdir(readOnlyMount);
  const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', readOnlyMount], { encoding: 'utf8' });
  assert.equal(mount.status, 0, `cannot mount a read-only tmpfs: ${mount.stderr}`);
});

after(() => {
  if (readOnlyMount !== '') spawnSync('umount', [readOnlyMount]);
});

test('every place a command takes a path says what the command does with it', () => {
  for (const name of PROGRAMS) {
    for (const command of commandsOf(name)) for (const input of pathInputsOf(command)) useOf(command, input);
  }
  const commands = new Map(
    [...commandsOf('aklite-offline'), ...commandsOf('ferry')].map((command) => [commandPath(command), command]),
  );
  for (const [name, inputs] of Object.entries(PATH_INPUTS)) {
    const command = commands.get(name);
    assert.ok(command, `PATH_INPUTS names "${name}", which is no command`);
    const known = pathInputsOf(command).map((input) => input.name);
    for (const input of Object.keys(inputs)) assert.ok(known.includes(input), `${name} has no path input "${input}"`);
  }
});

for (const name of PROGRAMS) {
  for (const command of commandsOf(name)) {
    for (const input of pathInputsOf(command)) {
      const where = input.argument ? `<${input.name}>` : input.option!.long!;
      test(`${name} ${commandPath(command)} ${where}: a bad path of each kind gets a documented code and one line`, async () => {
        const use = useOf(command, input);
        const codes = new Set(outcomesOf(commandPath(command)).map((info) => info.exitCode));
        codes.delete(1);
        for (const [kind, value] of Object.entries(badPaths(base, readOnlyMount, use))) {
          const dir = await fs.mkdtemp(path.join(base, 'run-'));
          const args = await commandLine(command, dir, { input, value });
          const result = await runProgram(name, args);
          const shown = `${name} ${args.join(' ')} (${kind}) -> ${result.code ?? result.signal}: ${result.stderr.trim()}`;
          assert.equal(result.signal, null, `killed or crashed: ${shown}`);
          assert.ok(codes.has(result.code!), `not a code the table assigns to ${commandPath(command)}: ${shown}`);
          if (result.code !== 0) {
            const lines = result.stderr.trimEnd().split('\n');
            assert.equal(lines.length, 1, `more than one line on stderr: ${shown}`);
            assert.match(lines[0]!, new RegExp(`^${name}: `), shown);
          }
          // These are never usable, whatever the command; and the first three are refused by the check itself, whose
          // one line names the path (a dangling link is a missing path, which a command may find after another).
          if (kind !== 'missing' && kind !== 'wrong type' && kind !== 'read-only') {
            assert.notEqual(result.code, 0, `accepted: ${shown}`);
          }
          if (kind === 'under a file' || kind === '/proc/x' || kind === '/dev/null') {
            assert.ok(result.stderr.includes(value), `the line does not name ${value}: ${shown}`);
          }
        }
      });
    }
  }
}

test('the reported cases, on a real factory: a file for a directory, a path under a file, /proc and /dev/null', async () => {
  const factory = await buildFactory();
  const aFile = path.join(base, 'a-file');
  const before = await hashTree(factory.repo.dir);
  const cases: [args: string[], code: number][] = [
    [['repo', 'init', aFile], 63],
    [['export', '--repo', factory.repo.dir, factory.v1, path.join(aFile, 'x'), '--tag', TAG], 63],
    [['export', '--repo', factory.repo.dir, factory.v1, '/proc/x', '--tag', TAG], 65],
    [['export', '--repo', factory.repo.dir, factory.v1, '/dev/null', '--tag', TAG, '--archive', 'tar'], 65],
    [['export', '--repo', factory.repo.dir, factory.v1, path.join(readOnlyMount, 'x'), '--tag', TAG], 64],
    [['sim', 'create', aFile, '--repo', factory.repo.dir, '--target', factory.v1], 63],
  ];
  for (const [args, code] of cases) {
    const result = await runProgram('ferry', args);
    assert.equal(result.signal, null, `ferry ${args.join(' ')} did not return`);
    assert.equal(result.code, code, `ferry ${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, /^ferry: [^\n]+\n$/);
  }
  assert.equal(await hashTree(factory.repo.dir), before, 'the factory repository is unchanged');
  // What a missing destination means stays the command's: --tuf-only has no bundle to refresh (13), while
  // --allow-multiple-targets starts the bundle there, as a factory script's first export of a loop does.
  const missing = path.join(await tempDir('bad-paths-missing'), 'sticks', 'multi');
  const tufOnly = await runProgram('ferry', [
    'export',
    '--repo',
    factory.repo.dir,
    factory.v1,
    missing,
    '--tag',
    TAG,
    '--tuf-only',
  ]);
  assert.equal(tufOnly.code, 13, tufOnly.stderr);
  const multi = await runProgram('ferry', [
    'export',
    '--repo',
    factory.repo.dir,
    factory.v1,
    missing,
    '--tag',
    TAG,
    '--allow-multiple-targets',
  ]);
  assert.equal(multi.code, 0, multi.stderr);
  assert.equal(await fs.readFile(aFile, 'utf8'), 'not a directory\n');
});
