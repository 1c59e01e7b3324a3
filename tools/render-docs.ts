/**
 * `npm run docs`: rewrites the generated tables of README.md between their markers: the exit codes from
 * src/exit-codes.ts (and those that differ in aktualizr-lite's table) and the journaled steps from
 * src/lifecycle/steps.ts, so that the documentation says what the code does (test/readme.test.ts checks them).
 */
import { promises as fs } from 'node:fs';
import { OUTCOMES, type OutcomeInfo } from '../src/exit-codes.js';
import { STEPS } from '../src/lifecycle/steps.js';

export function exitCodeRows(): string[] {
  return Object.values(OUTCOMES)
    .map((info, order) => ({ info, order }))
    .sort((a, b) => a.info.exitCode - b.info.exitCode || a.order - b.order)
    .map(({ info }) => `| ${info.exitCode} | ${info.commands.join(', ')} | ${info.meaning} | ${info.next} |`);
}

/** The outcomes a device answers with another code when its configuration asks for aktualizr-lite's table. */
export function akliteExitCodeRows(): string[] {
  return Object.entries(OUTCOMES as Record<string, OutcomeInfo>)
    .filter(([, info]) => info.aktualizrLite !== undefined)
    .map(
      ([name, info]) =>
        `| \`${name}\` | ${info.commands.join(', ')} | ${info.exitCode} | ${info.aktualizrLite} | ${info.meaning} |`,
    );
}

export function stepRows(): string[] {
  return Object.entries(STEPS).map(
    ([name, info]) => `| \`${name}\` | ${info.command} | ${info.path} | ${info.kinds.join(', ')} | ${info.does} |`,
  );
}

const TABLES: Record<string, string[]> = {
  'exit-codes': ['| code | command | meaning | what the operator does next |', '|---|---|---|---|', ...exitCodeRows()],
  'aklite-exit-codes': [
    '| outcome | command | documented | aktualizr-lite | meaning |',
    '|---|---|---|---|---|',
    ...akliteExitCodeRows(),
  ],
  steps: ['| step | command | path | updates | what it does |', '|---|---|---|---|---|', ...stepRows()],
};

const readmeUrl = new URL('../../README.md', import.meta.url);
let readme = await fs.readFile(readmeUrl, 'utf8');
for (const [name, lines] of Object.entries(TABLES)) {
  const START = `<!-- ${name}:start -->`;
  const END = `<!-- ${name}:end -->`;
  const start = readme.indexOf(START);
  const end = readme.indexOf(END);
  if (start < 0 || end < start) throw new Error(`README.md lacks the ${START} … ${END} markers`);
  readme = `${readme.slice(0, start + START.length)}\n${lines.join('\n')}\n${readme.slice(end)}`;
}
await fs.writeFile(readmeUrl, readme);
