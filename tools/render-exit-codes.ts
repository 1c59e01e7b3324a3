/**
 * `npm run docs`: rewrites the exit-code table of README.md from src/exit-codes.ts, between its markers, so that
 * the documented meanings are the ones the code uses (test/readme.test.ts checks it).
 */
import { promises as fs } from 'node:fs';
import { OUTCOMES } from '../src/exit-codes.js';

const START = '<!-- exit-codes:start -->';
const END = '<!-- exit-codes:end -->';

export function exitCodeRows(): string[] {
  return Object.values(OUTCOMES)
    .map((info, order) => ({ info, order }))
    .sort((a, b) => a.info.exitCode - b.info.exitCode || a.order - b.order)
    .map(({ info }) => `| ${info.exitCode} | ${info.commands.join(', ')} | ${info.meaning} | ${info.next} |`);
}

const readmeUrl = new URL('../../README.md', import.meta.url);
const readme = await fs.readFile(readmeUrl, 'utf8');
const start = readme.indexOf(START);
const end = readme.indexOf(END);
if (start < 0 || end < start) throw new Error(`README.md lacks the ${START} … ${END} markers`);
const table = ['| code | command | meaning | what the operator does next |', '|---|---|---|---|', ...exitCodeRows()].join('\n');
await fs.writeFile(readmeUrl, `${readme.slice(0, start + START.length)}\n${table}\n${readme.slice(end)}`);
