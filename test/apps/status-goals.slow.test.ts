import assert from 'node:assert/strict';
import { closeSync, openSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test, type TestContext } from 'node:test';
import { createSimDevice } from '../../src/sim/sim-device.js';
import { addHealthTargets, buildAppsFactory, type AppsFactory, type HealthTargets } from '../support/apps-factory.js';
import { cli } from '../support/cli.js';
import { PrivateDockerd } from '../support/dockerd.js';
import { exportTo, HARDWARE_ID, TAG, tempDir } from '../support/factory.js';
import { openTestDevice, statusOf as status, type TestDevice } from '../support/sim-device.js';

/**
 * Status goals and health checks on a real dockerd: an app whose healthcheck turns healthy commits; one still
 * starting when the window ends, or unhealthy, rolls back; a failing check rolls back with its output in the log
 * snippet, and a hanging one is killed at its timeout. Three at a time, each on its own device and engine.
 */
const TESTS_AT_A_TIME = { concurrency: 3 } as const;

let factory: AppsFactory;
let health: HealthTargets;
before(async () => {
  factory = await buildAppsFactory();
  health = await addHealthTargets(factory);
});

interface AppsDevice extends TestDevice {
  readonly daemon: PrivateDockerd;
}

/** A simulated device on the base target (heartbeat v1), its own dockerd, and `ferry` keys added to its config. */
async function deviceOnBase(t: TestContext, testingWindowSeconds: number, ferryKeys = ''): Promise<AppsDevice> {
  const daemon = await PrivateDockerd.start();
  t.after(() => daemon.stop());
  const dir = path.join(await tempDir('goals-device'), 'device');
  await createSimDevice(dir, factory.repo, {
    target: factory.targets.base,
    dockerHost: daemon.host,
    testingWindowSeconds,
  });
  const opened = await openTestDevice(dir);
  if (ferryKeys !== '') await fs.writeFile(path.join(opened.configDir, '60-checks.toml'), `[ferry]\n${ferryKeys}\n`);
  return { ...opened, daemon };
}

async function installAndRestartEngine(device: AppsDevice, target: string): Promise<void> {
  const installed = await cli('install', '--config', device.configDir, '--src-dir', await exportTo(factory, target));
  assert.equal(installed.code, 101, installed.stderr);
  await device.daemon.restart();
}

async function writeCheck(device: TestDevice, name: string, text: string): Promise<void> {
  await fs.mkdir(device.config.healthChecksDir, { recursive: true });
  await fs.writeFile(path.join(device.config.healthChecksDir, name), text, { mode: 0o755 });
}

const names = (device: AppsDevice) => device.daemon.running().map((line) => line.split(' ')[0]);

describe('status goals in the signed target', () => {
  test('target add signs each app goal: from its compose file, or as --status-goal gives it', async () => {
    const targetsOf = async () =>
      JSON.parse(await fs.readFile(path.join(factory.repo.dir, 'tuf', 'targets.json'), 'utf8')).signed.targets;
    const derived = (await targetsOf())[health.healthy].custom.docker_compose_apps;
    assert.deepEqual([derived.ready.status_goal, derived.heartbeat.status_goal], ['healthy', 'running']);
    const addGoalsTarget = (version: string, ...apps: string[]) =>
      cli(
        'target',
        'add',
        '--repo',
        factory.repo.dir,
        '--name',
        'goals',
        '--version',
        version,
        '--hardware-id',
        HARDWARE_ID,
        '--tag',
        TAG,
        '--commit',
        factory.rootfs.a,
        ...apps,
      );
    const added = await addGoalsTarget(
      '900',
      '--app',
      'ready',
      '--app',
      'heartbeat',
      '--status-goal',
      'ready=running',
      '--status-goal',
      'heartbeat=healthy',
    );
    assert.equal(added.code, 0, added.stderr);
    const given = (await targetsOf())['goals-900'].custom.docker_compose_apps;
    assert.deepEqual([given.ready.status_goal, given.heartbeat.status_goal], ['running', 'healthy']);
    const before = await fs.readFile(path.join(factory.repo.dir, 'tuf', 'targets.json'), 'utf8');
    for (const goal of ['sick=healthy', 'ready=ready']) {
      const refused = await addGoalsTarget('901', '--app', 'ready', '--status-goal', goal);
      assert.equal(refused.code, 2, refused.stderr);
      assert.match(refused.stderr, /^ferry: --status-goal/);
    }
    assert.equal(await fs.readFile(path.join(factory.repo.dir, 'tuf', 'targets.json'), 'utf8'), before);
  });
});

describe('status goals and health checks on a real dockerd', TESTS_AT_A_TIME, () => {
  test('an app whose healthcheck turns healthy commits (0); status and --progress-fd show its goal reached', async (t) => {
    const device = await deviceOnBase(t, 4);
    await writeCheck(
      device,
      '10-ok',
      '#!/bin/sh\necho "$FERRY_PHASE $FERRY_TARGET_NAME" >> "$(dirname "$0")/../phases"\n',
    );
    await installAndRestartEngine(device, health.healthy);
    const events = path.join(await tempDir('goals-progress'), 'events.jsonl');
    const fd = openSync(events, 'w');
    let ran;
    try {
      ran = await cli('run', '--config', device.configDir, '--progress-fd', String(fd));
    } finally {
      closeSync(fd);
    }
    assert.equal(ran.code, 0, ran.stderr);
    assert.deepEqual(names(device), ['heartbeat_main_1', 'ready_main_1']);
    assert.equal(
      await fs.readFile(path.join(device.config.healthChecksDir, '..', 'phases'), 'utf8'),
      `goals-reached ${health.healthy}\nwindow-end ${health.healthy}\n`,
      'the checks ran once the goals were reached and at the end of the window',
    );
    const after = await status(device);
    assert.equal(after['state'], 'UPDATED');
    const ready = (after['apps'] as Array<Record<string, unknown>>).find((line) => line['app'] === 'ready');
    assert.deepEqual([ready?.['goal'], ready?.['reached']], ['healthy', 'healthy']);
    const goals = (await fs.readFile(events, 'utf8'))
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as { phase: string; apps?: Record<string, { goal: string; reached: string }> })
      .filter((event) => event.phase === 'testing' && event.apps !== undefined)
      .map((event) => event.apps!['ready']!.reached);
    assert.equal(goals.at(-1), 'healthy');
    const shown = await cli('show', await exportTo(factory, health.healthy));
    assert.match(shown.stdout, /app ready: .* \(status goal: healthy\)/);
    assert.match(shown.stdout, /app heartbeat: .* \(status goal: running\)/);
  });

  test('an app still starting when the window ends rolls back (99), its log in the snippet', async (t) => {
    const device = await deviceOnBase(t, 2);
    await installAndRestartEngine(device, health.stuck);
    const ran = await cli('run', '--config', device.configDir, '--json');
    assert.equal(ran.code, 99, ran.stderr);
    assert.match(
      JSON.parse(ran.stdout).message,
      /status goal not reached: app "stuck" service "main" is still starting/,
    );
    assert.deepEqual(names(device), ['heartbeat_main_1'], 'the previous apps run, the stuck one is gone');
    const after = await status(device);
    const snippet = (after['lastError'].log as string[]).join('\n');
    assert.match(snippet, /app "stuck" service "main", the last lines of its log:\n.*\| stuck: /);
    assert.equal(after['current'].name, factory.targets.base);
  });

  test('an app that turns unhealthy on a new rootfs: 100, the reboot, then 99 with the previous apps', async (t) => {
    // A window longer than the app takes to turn unhealthy: that ends it at once.
    const device = await deviceOnBase(t, 8);
    const installed = await cli(
      'install',
      '--config',
      device.configDir,
      '--src-dir',
      await exportTo(factory, health.sickNewRootfs),
    );
    assert.equal(installed.code, 100, installed.stderr);
    assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
    await device.daemon.restart();
    const failed = await cli('run', '--config', device.configDir, '--json');
    assert.equal(failed.code, 100, failed.stderr);
    assert.match(JSON.parse(failed.stdout).message, /status goal not reached: app "sick" service "main" is unhealthy/);
    const snippet = ((await status(device))['lastError'].log as string[]).join('\n');
    assert.match(snippet, /\| sick: waiting for \/tmp\/ok/);
    assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
    const back = await cli('run', '--config', device.configDir);
    assert.equal(back.code, 99, back.stderr);
    assert.deepEqual(names(device), ['heartbeat_main_1']);
    const after = await status(device);
    assert.equal(after['booted'].target, factory.targets.base);
    assert.equal(after['pending'], null);
  });

  test('a failing health check rolls back (99) with its output in the snippet', async (t) => {
    const device = await deviceOnBase(t, 2);
    await writeCheck(
      device,
      '20-storage',
      '#!/bin/sh\necho "checking /data"\necho "fsck: /dev/mmcblk0p4 has errors" >&2\nexit 1\n',
    );
    await installAndRestartEngine(device, health.healthy);
    const ran = await cli('run', '--config', device.configDir, '--json');
    assert.equal(ran.code, 99, ran.stderr);
    assert.match(
      JSON.parse(ran.stdout).message,
      /status goal not reached: 20-storage: fsck: \/dev\/mmcblk0p4 has errors/,
    );
    const after = await status(device);
    const snippet = (after['lastError'].log as string[]).join('\n');
    assert.match(snippet, /\| checking \/data\n.*\| fsck: \/dev\/mmcblk0p4 has errors/);
    assert.deepEqual(names(device), ['heartbeat_main_1']);
    assert.equal(after['current'].name, factory.targets.base);
  });

  test('a hanging health check is killed at its timeout and the update rolls back (99)', async (t) => {
    const device = await deviceOnBase(t, 2, 'health_check_timeout_seconds = 1');
    const pidFile = path.join(device.dir, 'check-pid');
    await writeCheck(
      device,
      '30-hangs',
      `#!/bin/sh\necho $$ > ${pidFile}\necho "waiting for the modem"\nexec sleep 300\n`,
    );
    await installAndRestartEngine(device, health.healthy);
    const ran = await cli('run', '--config', device.configDir, '--json');
    assert.equal(ran.code, 99, ran.stderr);
    assert.match(
      JSON.parse(ran.stdout).message,
      /status goal not reached: 30-hangs: timed out after 1 s and was killed; last line: waiting for the modem/,
    );
    const pid = Number((await fs.readFile(pidFile, 'utf8')).trim());
    const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
    assert.ok(stat === null || /^\d+ \(.*\) [ZX] /.test(stat), `the check (pid ${pid}) is gone: ${stat}`);
  });
});
