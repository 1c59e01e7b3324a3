import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { cli } from '../support/cli.js';
import { buildFactory, exportTo, type TestFactory } from '../support/factory.js';
import { makeDevice, statusOf } from '../support/sim-device.js';

let factory: TestFactory;
let bundle: string;
before(async () => {
  factory = await buildFactory();
  bundle = await exportTo(factory, factory.v2);
});

describe('one install or run at a time', () => {
  test('a second command while the lock is held exits 31 at once, naming the holder, and writes nothing', async () => {
    const device = await makeDevice(factory, factory.v1);
    const holder = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const lock = path.join(device.config.rebootSentinelDir, 'ferry.lock');
      await fs.writeFile(
        lock,
        JSON.stringify({ pid: holder.pid, command: 'install', since: new Date().toISOString() }),
      );
      const statusBefore = await fs.readFile(device.device.paths.statusFile, 'utf8');
      for (const command of [['install', '--src-dir', bundle], ['run']]) {
        const result = await cli(command[0]!, '--config', device.configDir, ...command.slice(1));
        assert.equal(result.code, 31, result.stderr);
        assert.match(result.stderr, new RegExp(`another ferry install is running \\(pid ${holder.pid},`));
      }
      assert.equal(await fs.readFile(device.device.paths.statusFile, 'utf8'), statusBefore);
      assert.ok(await fs.readFile(lock, 'utf8'), 'the holder keeps its lock');
    } finally {
      holder.kill();
    }
  });

  test('a stale lock (its process is gone) is taken over, and released after the command', async () => {
    const device = await makeDevice(factory, factory.v1);
    const gone = spawn('true');
    await new Promise((resolve) => gone.on('exit', resolve));
    const lock = path.join(device.config.rebootSentinelDir, 'ferry.lock');
    await fs.writeFile(lock, JSON.stringify({ pid: gone.pid, command: 'run', since: '2026-01-01T00:00:00Z' }));
    const result = await cli('install', '--config', device.configDir, '--src-dir', bundle);
    assert.equal(result.code, 100, result.stderr);
    await assert.rejects(fs.access(lock));
    assert.equal((await statusOf(device))['pending'].target.name, factory.v2);
  });
});
