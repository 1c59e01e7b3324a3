import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { test } from 'node:test';
import { OUTCOMES, type OutcomeInfo } from '../src/exit-codes.js';
import { STEPS } from '../src/lifecycle/steps.js';

test('the README exit-code table lists every outcome of src/exit-codes.ts, with the same meaning', async () => {
  const readme = await fs.readFile(new URL('../../README.md', import.meta.url), 'utf8');
  const rows = new Set(readme.split('\n').filter((line) => /^\| \d+ \|/.test(line)));
  for (const [name, info] of Object.entries(OUTCOMES)) {
    const row = `| ${info.exitCode} | ${info.commands.join(', ')} | ${info.meaning} | ${info.next} |`;
    assert.ok(rows.has(row), `README lacks the row for ${name}: ${row}`);
  }
  assert.equal(rows.size, Object.keys(OUTCOMES).length, 'the README table has rows that src/exit-codes.ts does not');
});

test("the README lists every outcome aktualizr-lite's table answers with another code, generated from src/exit-codes.ts", async () => {
  const readme = await fs.readFile(new URL('../../README.md', import.meta.url), 'utf8');
  const start = readme.indexOf('<!-- aklite-exit-codes:start -->');
  const end = readme.indexOf('<!-- aklite-exit-codes:end -->');
  assert.ok(start > 0 && end > start, 'the table markers are there');
  const rows = readme
    .slice(start, end)
    .split('\n')
    .filter((line) => /^\| `[A-Z_]+` \|/.test(line));
  const expected = Object.entries(OUTCOMES as Record<string, OutcomeInfo>)
    .filter(([, info]) => info.aktualizrLite !== undefined)
    .map(
      ([name, info]) =>
        `| \`${name}\` | ${info.commands.join(', ')} | ${info.exitCode} | ${info.aktualizrLite} | ${info.meaning} |`,
    );
  assert.ok(expected.length > 0);
  assert.deepEqual(rows, expected);
});

test('the README script snippet is valid sh and handles every exit code install and run can return', async () => {
  const readme = await fs.readFile(new URL('../../README.md', import.meta.url), 'utf8');
  const start = readme.indexOf('<!-- script:start -->');
  const end = readme.indexOf('<!-- script:end -->');
  assert.ok(start > 0 && end > start, 'the snippet markers are there');
  const script = readme
    .slice(start, end)
    .replace(/^[\s\S]*?```sh\n/, '')
    .replace(/```[\s\S]*$/, '');
  const syntax = spawnSync('sh', ['-n'], { input: script, encoding: 'utf8' });
  assert.equal(syntax.status, 0, syntax.stderr);
  const functionOf = (name: string) =>
    script.slice(script.indexOf(`${name}() {`), script.indexOf('\n}\n', script.indexOf(`${name}() {`)));
  const handled = (body: string) =>
    new Set([...body.matchAll(/^\s+([\d|]+)\)/gm)].flatMap((match) => match[1]!.split('|').map(Number)));
  for (const [command, fn] of [
    ['install', 'ferry_update'],
    ['run', 'ferry_finish'],
  ] as const) {
    const codes = handled(functionOf(fn));
    for (const [name, info] of Object.entries(OUTCOMES)) {
      if (!(info.commands as readonly string[]).some((entry) => entry === command || entry === '*')) continue;
      if (info.exitCode === 2 && name !== 'USAGE') continue;
      assert.ok(codes.has(info.exitCode), `${fn} does not handle ${info.exitCode} (${name})`);
    }
  }
});

test('the README script snippet finishes a pending install (30) with run, then installs again: no reboot asked', async () => {
  const readme = await fs.readFile(new URL('../../README.md', import.meta.url), 'utf8');
  const script = readme
    .slice(readme.indexOf('<!-- script:start -->'), readme.indexOf('<!-- script:end -->'))
    .replace(/^[\s\S]*?```sh\n/, '')
    .replace(/```[\s\S]*$/, '');
  // A device whose earlier install waits: install answers 30 until run has finished it, then 0.
  const device = `
calls=''
ferry() {
  calls="$calls $1"
  case $1 in
    install) case $calls in *run*) return 0 ;; *) return 30 ;; esac ;;
    run) return 0 ;;
  esac
}
ferry_update /media/bundle
echo "exit $? calls$calls"
`;
  const result = spawnSync('sh', ['-c', `${script}\n${device}`], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /exit 0 calls install run install$/m, result.stdout);
  assert.doesNotMatch(result.stdout, /reboot/, result.stdout);
});

test('the README lists every journaled step of src/lifecycle/steps.ts, with what it does', async () => {
  const readme = await fs.readFile(new URL('../../README.md', import.meta.url), 'utf8');
  const rows = readme.split('\n').filter((line) => /^\| `(install|run|recover)\./.test(line));
  assert.deepEqual(
    rows,
    Object.entries(STEPS).map(
      ([name, info]) => `| \`${name}\` | ${info.command} | ${info.path} | ${info.kinds.join(', ')} | ${info.does} |`,
    ),
  );
});

test('the README names every code that prints on stdout: the successes and instructions of the table', async () => {
  const readme = await fs.readFile(new URL('../../README.md', import.meta.url), 'utf8');
  const codes = [
    ...new Set(
      Object.values(OUTCOMES)
        .filter((info) => info.kind !== 'failure')
        .map((info) => info.exitCode)
        .sort((a, b) => a - b),
    ),
  ];
  const list = `${codes.slice(0, -1).join(', ')} and ${codes.at(-1)!}`;
  assert.ok(
    readme
      .replace(/\s+/g, ' ')
      .includes(`Codes ${list} are successes or instructions and print their message on stdout`),
    `the README should say that codes ${list} print on stdout`,
  );
});
