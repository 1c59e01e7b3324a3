import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { HealthCheckDir } from '../../src/device/health-checks.js';
import { tempDir } from '../support/factory.js';

/** The health-check runner on real processes: order, environment, skips, failures and the timeout. */

const TARGET = { name: 'os-7', version: '7' };

async function checksDir(scripts: Record<string, { text: string; mode?: number }>): Promise<string> {
  const dir = path.join(await tempDir('checks'), 'check.d');
  await fs.mkdir(dir);
  for (const [name, { text, mode }] of Object.entries(scripts)) {
    await fs.writeFile(path.join(dir, name), text, { mode: mode ?? 0o755 });
  }
  return dir;
}

/**
 * Whether the process still runs once a SIGKILL had time to land: gone, or a zombie nobody reaped yet (a container's
 * init may not reap), counts as dead. It is looked at until it is dead, for at most a few seconds.
 */
async function runsAfterKill(pid: number): Promise<boolean> {
  for (let look = 0; look < 250; look += 1) {
    const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
    if (stat === null || /^\d+ \(.*\) [ZX] /.test(stat)) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

describe('health checks', () => {
  test('no directory: no checks, passed', async () => {
    const result = await new HealthCheckDir(path.join(await tempDir('checks'), 'none'), 5000).run('window-end', TARGET);
    assert.deepEqual(result, { ok: true, log: [] });
  });

  test('a directory that cannot be listed (here a file) fails, rather than passing unchecked', async () => {
    const file = path.join(await tempDir('checks'), 'check.d');
    await fs.writeFile(file, '');
    const result = await new HealthCheckDir(file, 5000).run('window-end', TARGET);
    assert.equal(result.ok, false);
    assert.match(result.failure!, /^status goal not reached: the health checks in .*check\.d cannot be listed: /);
  });

  test('run in name order with the target and the phase in their environment; a non-executable one is skipped with a log line', async () => {
    const out = path.join(await tempDir('checks'), 'seen');
    const record = (tag: string) =>
      `#!/bin/sh\necho "${tag} $FERRY_TARGET_NAME $FERRY_TARGET_VERSION $FERRY_PHASE" >> ${out}\n`;
    const dir = await checksDir({
      '20-second': { text: record('20') },
      '10-first': { text: record('10') },
      '15-not-executable': { text: record('15'), mode: 0o644 },
    });
    const result = await new HealthCheckDir(dir, 5000).run('goals-reached', TARGET);
    assert.equal(result.ok, true);
    assert.equal(await fs.readFile(out, 'utf8'), '10 os-7 7 goals-reached\n20 os-7 7 goals-reached\n');
    assert.deepEqual(result.log, [
      'health check 10-first (goals-reached) passed',
      'health check 15-not-executable skipped: not executable',
      'health check 20-second (goals-reached) passed',
    ]);
  });

  test('a check that exits non-zero fails with its last line; its last lines are kept; later checks do not run', async () => {
    const out = path.join(await tempDir('checks'), 'later-ran');
    const lines = Array.from({ length: 15 }, (_, at) => `echo line ${at + 1}`).join('\n');
    const dir = await checksDir({
      '10-fails': { text: `#!/bin/sh\n${lines}\necho "disk /data is read-only" >&2\nexit 3\n` },
      '20-later': { text: `#!/bin/sh\ntouch ${out}\n` },
    });
    const result = await new HealthCheckDir(dir, 5000).run('window-end', TARGET);
    assert.equal(result.ok, false);
    assert.equal(result.failure, 'status goal not reached: 10-fails: disk /data is read-only');
    assert.equal(result.output!.length, 10);
    assert.equal(result.output!.at(-1), 'disk /data is read-only');
    assert.equal(result.output![0], 'line 7');
    await assert.rejects(fs.access(out), 'the checks after a failed one are not run');
  });

  test('a check that hangs is killed at its timeout, with the processes it started', async () => {
    const pids = path.join(await tempDir('checks'), 'pids');
    const dir = await checksDir({
      '10-hangs': { text: `#!/bin/sh\nsleep 300 &\necho "$$ $!" > ${pids}\necho waiting for the modem\nwait\n` },
    });
    const result = await new HealthCheckDir(dir, 1000).run('window-end', TARGET);
    assert.equal(result.ok, false);
    assert.equal(
      result.failure,
      'status goal not reached: 10-hangs: timed out after 1 s and was killed; last line: waiting for the modem',
    );
    const [shell, sleeper] = (await fs.readFile(pids, 'utf8')).trim().split(' ').map(Number);
    for (const pid of [shell!, sleeper!]) assert.equal(await runsAfterKill(pid), false, `process ${pid} is gone`);
  });
});
