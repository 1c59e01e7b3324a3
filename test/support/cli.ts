import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { run } from '../../src/cli/program.js';

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the real command-line program in-process, capturing what it prints. */
export async function cli(...args: string[]): Promise<CliResult> {
  return runAs('ferry', args);
}

export async function akliteOffline(...args: string[]): Promise<CliResult> {
  return runAs('aklite-offline', args);
}

async function runAs(name: 'ferry' | 'aklite-offline', args: string[]): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await run(name, args, { stdout: (text) => (stdout += text), stderr: (text) => (stderr += text) });
  return { code, stdout, stderr };
}

export interface ProcessResult extends CliResult {
  /** The signal that ended the process (SIGKILL for an injected crash), or null if it exited. */
  readonly signal: NodeJS.Signals | null;
}

const FERRY_ENTRY = fileURLToPath(new URL('../../src/cli/ferry.js', import.meta.url));

/** Runs ferry as its own process: the way to test what a SIGKILL (an injected crash) leaves behind. */
export function ferryProcess(args: readonly string[], env: Record<string, string> = {}): Promise<ProcessResult> {
  return startFerryProcess(args, env).result;
}

/**
 * Runs ferry as its own process with the clock set by libfaketime (Debian `faketime`) to `time`, a UTC
 * `YYYY-MM-DD hh:mm:ss` that runs on from there; the tools ferry starts see the same clock. Monotonic time stays
 * real, so timers behave.
 */
export function ferryProcessAt(
  time: string,
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<ProcessResult> {
  return startFerryProcess(args, { ...env, TZ: 'UTC', FAKETIME_DONT_FAKE_MONOTONIC: '1' }, ['faketime', time]).result;
}

/** Starts ferry as its own process; `pid` lets a test stop and continue it (FERRY_PAUSE_AT). */
export function startFerryProcess(
  args: readonly string[],
  env: Record<string, string> = {},
  /** A command that runs node, such as faketime and its arguments. */
  wrapper: readonly string[] = [],
): { readonly pid: number; readonly result: Promise<ProcessResult> } {
  const [command, ...prefix] = [...wrapper, process.execPath];
  const child = spawn(command!, [...prefix, FERRY_ENTRY, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const result = new Promise<ProcessResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code: code ?? -1, signal, stdout, stderr }));
  });
  return { pid: child.pid!, result };
}

/** Waits until a process started with FERRY_PAUSE_AT has stopped itself at its step (state T), for up to 60 s. */
export async function waitUntilStopped(pid: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
    if (state === 'T') return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail(`process ${pid} never paused`);
}
