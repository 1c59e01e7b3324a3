import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { OUTCOMES, exitCodeIn, type Outcome, type OutcomeInfo } from '../../src/exit-codes.js';
import { akliteOffline, cli } from '../support/cli.js';
import { exportBundle } from '../../src/bundle/workstation/export.js';
import { buildAppsFactory } from '../support/apps-factory.js';
import { TAG, buildFactory, exportTo, tempDir, type TestFactory } from '../support/factory.js';
import { makeDevice, statusOf, type TestDevice } from '../support/sim-device.js';
import { FIO_FIXTURE } from '../support/foundries-signer.js';
import { flipSignatureBit } from '../support/tamper.js';
import { hashTree } from '../support/tree-hash.js';

/**
 * The rest of aklite-offline's command line: check, current, --log-level, -c repeated, the short options, and the
 * two exit-code tables (ferry's documented one, and today's aktualizr-lite codes behind [ferry] exit_codes).
 */

let factory: TestFactory;
let bundleV2: string;
before(async () => {
  factory = await buildFactory();
  bundleV2 = await exportTo(factory, factory.v2);
});

/** A configuration fragment that asks for aktualizr-lite's exit codes, given as a second -c after the device's. */
async function akliteCodesFragment(value = 'aktualizr-lite'): Promise<string> {
  const file = path.join(await tempDir('aklite-codes'), 'z-exit-codes.toml');
  await fs.writeFile(file, `[ferry]\nexit_codes = "${value}"\n`);
  return file;
}

/**
 * Runs `aklite-offline <args>` and asserts the whole device directory, status record and journal included, is as it
 * was; only the per-boot cache of the booted deployment (written by the first read of it after a boot) is left out.
 */
async function untouched(device: TestDevice, ...args: string[]) {
  const perBoot = [
    path.join('run', 'aktualizr-session', 'ferry-booted.json'),
    path.relative(device.dir, device.device.paths.bootIdFile),
  ];
  const before = await hashTree(device.dir, perBoot);
  const result = await akliteOffline(...args);
  assert.equal(await hashTree(device.dir, perBoot), before, `the device changed: aklite-offline ${args.join(' ')}`);
  return result;
}

describe('aklite-offline check', () => {
  test('a device on v1, a stick with v2: 36, the targets listed with their commits, nothing written', async () => {
    const device = await makeDevice(factory, factory.v1);
    const result = await untouched(device, 'check', '-c', device.configDir, '-s', bundleV2);
    assert.equal(result.code, 36, result.stderr);
    assert.match(result.stdout, /^Found Targets:$/m);
    assert.match(result.stdout, new RegExp(`^${factory.v2} \\(selected\\)$`, 'm'));
    assert.match(
      result.stdout,
      new RegExp(`^\\tostree: ${factory.commits[factory.v2]} \\(on the stick, not on the device\\)$`, 'm'),
    );
    assert.match(result.stdout, /^\tapps: none$/m, 'a target without apps says so');
    assert.match(result.stdout, /install would stage/);
    // Nothing was stored: the install after it still walks from the device's own trusted metadata.
    const install = await cli('install', '--config', device.configDir, '--src-dir', bundleV2);
    assert.equal(install.code, 100, install.stderr);
  });

  test('--json: each target with its commit, where the commit is, and which one install would take', async () => {
    const device = await makeDevice(factory, factory.v1);
    const result = await untouched(device, 'check', '--config', device.configDir, '--src-dir', bundleV2, '--json');
    assert.equal(result.code, 36, result.stderr);
    const printed = JSON.parse(result.stdout) as {
      outcome: Outcome;
      exitCode: number;
      selected: string;
      targets: { name: string; commit: string; commitOnStick: boolean; commitOnDevice: boolean; selected: boolean }[];
    };
    assert.equal(printed.outcome, 'CHECK_UPDATE_AVAILABLE');
    assert.equal(printed.exitCode, 36);
    assert.equal(printed.selected, factory.v2);
    const v2 = printed.targets.find((target) => target.name === factory.v2);
    assert.deepEqual(
      { commit: v2?.commit, onStick: v2?.commitOnStick, onDevice: v2?.commitOnDevice, selected: v2?.selected },
      { commit: factory.commits[factory.v2], onStick: true, onDevice: false, selected: true },
    );
  });

  test('a stick packed as one .tar: unpacked beside the device’s storage for the check and gone again after', async () => {
    const device = await makeDevice(factory, factory.v1);
    const archive = path.join(await tempDir('packed'), 'bundle.tar');
    assert.equal((await cli('bundle', 'pack', bundleV2, archive)).code, 0);
    const result = await untouched(device, 'check', '-c', device.configDir, '-s', archive);
    assert.equal(result.code, 36, result.stderr);
    assert.match(result.stdout, new RegExp(`^${factory.v2} \\(selected\\)$`, 'm'));
  });

  test('a device that already runs the stick’s target: 0, nothing written', async () => {
    const device = await makeDevice(factory, factory.v2);
    const result = await untouched(device, 'check', '-c', device.configDir, '-s', bundleV2);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`^${factory.v2} \\(current, selected\\)$`, 'm'));
    assert.match(result.stdout, /install would change nothing/);
  });

  test('a stick whose targets.json signature is tampered: refused with install’s code (11), one line, nothing written', async () => {
    const device = await makeDevice(factory, factory.v1);
    const bundle = await exportTo(factory, factory.v2);
    await flipSignatureBit(bundle, 'targets.json');
    const result = await untouched(device, 'check', '-c', device.configDir, '-s', bundle);
    assert.equal(result.code, 11, result.stderr);
    assert.equal(result.stderr.trimEnd().split('\n').length, 1, result.stderr);
    assert.match(result.stderr, /^aklite-offline: .*targets\.json/);
    assert.equal(result.stdout, '');
  });

  test('a path that is no bundle: 13, nothing written', async () => {
    const device = await makeDevice(factory, factory.v1);
    const result = await untouched(device, 'check', '-c', device.configDir, '-s', device.configDir);
    assert.equal(result.code, 13, result.stderr);
  });

  test('a stick with apps: each app with its uri, on the stick, and whether the device holds it', async () => {
    const apps = await buildAppsFactory();
    const bundle = path.join(await tempDir('apps-bundle'), 'bundle');
    await exportBundle(apps.repo, {
      targetName: apps.targets.crasher,
      destination: bundle,
      tag: TAG,
      type: 'ci',
      expiresInDays: 30,
    });
    // A device without apps (so without an engine), offered a target with two.
    const device = await makeDevice(apps as never, apps.targets.noApps);
    const result = await untouched(device, 'check', '-c', device.configDir, '-s', bundle, '--json');
    assert.equal(result.code, 36, result.stderr);
    const printed = JSON.parse(result.stdout) as {
      targets: { name: string; apps: { name: string; uri: string; onStick: boolean; onDevice: boolean }[] }[];
    };
    const target = printed.targets.find((candidate) => candidate.name === apps.targets.crasher);
    assert.deepEqual(target?.apps.map((app) => app.name).sort(), ['crasher', 'heartbeat']);
    for (const app of target?.apps ?? []) {
      assert.deepEqual({ onStick: app.onStick, onDevice: app.onDevice }, { onStick: true, onDevice: false }, app.name);
      assert.match(app.uri, new RegExp(`/${app.name}@sha256:[0-9a-f]{64}$`));
    }
    const text = await untouched(device, 'check', '-c', device.configDir, '-s', bundle);
    assert.match(text.stdout, /^\t\t\(on\) heartbeat -> \S+@sha256:[0-9a-f]{64} \(on the stick, not on the device\)$/m);
  });

  test('a Foundries stick goes through install’s own verification: check answers what install answers', async () => {
    // A copy: an install that verifies the stick leaves its report there.
    const stick = path.join(await tempDir('fio-stick'), 'bundle');
    await fs.cp(path.join(FIO_FIXTURE, 'bundle'), stick, { recursive: true });
    const device = await makeDevice(factory, factory.v1);
    const check = await untouched(device, 'check', '-c', device.configDir, '-s', stick);
    const install = await akliteOffline('install', '-c', device.configDir, '-s', stick);
    const checkAnswerFor: Record<number, number> = { 0: 0, 100: 36, 101: 36 };
    assert.equal(check.code, checkAnswerFor[install.code] ?? install.code, `${check.stderr}\n${install.stderr}`);
    if (!(install.code in checkAnswerFor)) assert.equal(check.stderr, install.stderr);
  });

  test('is aklite-offline’s: ferry has status and verify instead', async () => {
    assert.equal((await cli('check', '--src-dir', bundleV2)).code, 2);
    assert.equal((await cli('current')).code, 2);
  });
});

describe('aklite-offline current', () => {
  test('prints the target the device runs and its ostree hash, as aklite-offline does; --json the same', async () => {
    const device = await makeDevice(factory, factory.v1);
    const result = await untouched(device, 'current', '-c', device.configDir);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `Target: ${factory.v1}\nOstree hash: ${factory.commits[factory.v1]}\n`);
    const json = await untouched(device, 'current', '-c', device.configDir, '--json');
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(
      (({ target, version, ostreeHash, apps }) => ({ target, version, ostreeHash, apps }))(JSON.parse(json.stdout)),
      { target: factory.v1, version: '1', ostreeHash: factory.commits[factory.v1], apps: [] },
    );
  });

  test('after an update and its run: the new target', async () => {
    const device = await makeDevice(factory, factory.v1);
    assert.equal((await akliteOffline('install', '-c', device.configDir, '-s', bundleV2)).code, 100);
    assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
    assert.equal((await akliteOffline('run', '-c', device.configDir)).code, 0);
    const result = await akliteOffline('current', '-c', device.configDir);
    assert.match(result.stdout, new RegExp(`^Target: ${factory.v2}\\nOstree hash: ${factory.commits[factory.v2]}\\n`));
  });
});

describe('the short options, -c repeated and --log-level', () => {
  test('install -s -t: the named target; -f installs a lower version that is refused (102) without it', async () => {
    const bundleV1 = await exportTo(factory, factory.v1);
    const device = await makeDevice(factory, factory.v2);
    const refused = await akliteOffline('install', '-c', device.configDir, '-s', bundleV1, '-t', factory.v1);
    assert.equal(refused.code, 102, refused.stderr);
    const forced = await akliteOffline('install', '-c', device.configDir, '-s', bundleV1, '-t', factory.v1, '-f');
    assert.equal(forced.code, 100, forced.stderr);
    assert.equal((await statusOf(device))['pending'].target.name, factory.v1);
  });

  test('-t names a target the stick lacks: 20', async () => {
    const device = await makeDevice(factory, factory.v1);
    const result = await akliteOffline('install', '-c', device.configDir, '-s', bundleV2, '-t', 'no-such-target');
    assert.equal(result.code, 20, result.stderr);
  });

  test('-c is repeatable: later files override earlier ones, key by key, as aktualizr-lite merges sota.toml', async () => {
    const device = await makeDevice(factory, factory.v1);
    const other = path.join(await tempDir('hwid'), 'hwid.toml');
    await fs.writeFile(other, '[provision]\nprimary_ecu_hardware_id = "other-board"\n');
    // The second file moves the device to another board: the stick has no target for it.
    const result = await untouched(device, 'check', '-c', device.configDir, '-c', other, '-s', bundleV2);
    assert.equal(result.code, 7, result.stderr);
    const reversed = await untouched(device, 'check', '-c', other, '-c', device.configDir, '-s', bundleV2);
    assert.equal(reversed.code, 36, reversed.stderr);
  });

  test('--log-level takes 0 to 5; anything else is a bad command line', async () => {
    for (const level of ['6', '-1', 'info', '2.5']) {
      const result = await akliteOffline('current', '--log-level', level);
      assert.equal(result.code, 2, `--log-level ${level}: ${result.stderr}`);
      assert.match(result.stderr, /^aklite-offline: .*--log-level/);
    }
  });

  test('--log-level 3 and up leaves out the human text beside --json; 2 (the default) keeps it', async () => {
    const device = await makeDevice(factory, factory.v1);
    const quiet = await akliteOffline('current', '-c', device.configDir, '--json', '--log-level', '3');
    assert.equal(quiet.code, 0);
    assert.equal(quiet.stderr, '');
    const info = await akliteOffline('current', '-c', device.configDir, '--json', '--log-level', '2');
    assert.match(info.stderr, /^Target: /);
    assert.match((await akliteOffline('current', '-c', device.configDir, '--json')).stderr, /^Target: /);
  });

  test('--help of each aklite-offline command names its short options and --log-level', async () => {
    const help = async (...words: string[]) => (await akliteOffline(...words, '--help')).stdout;
    const root = await help();
    for (const command of ['check', 'install', 'run', 'current'])
      assert.match(root, new RegExp(`^  ${command}\\b`, 'm'));
    assert.match(await help('install'), /-s, --src-dir <path>[\s\S]*-t, --target <name>[\s\S]*-f, --force/);
    assert.match(await help('check'), /-s, --src-dir <path>/);
    for (const command of ['check', 'install', 'run', 'current']) {
      const text = await help(command);
      assert.match(text, /-c, --config <file\|dir>/, command);
      assert.match(text, /--log-level <0-5>/, command);
    }
  });
});

describe('the two exit-code tables', () => {
  const deviceCommands = ['install', 'run', 'check', 'current', 'status'];
  const forDevice = (info: OutcomeInfo) => info.commands.some((command) => deviceCommands.includes(command));

  test('the documented table is the default: install 0/90/100/101, run 0/90/99/100/110/120', () => {
    const codes = (...outcomes: Outcome[]) => outcomes.map((outcome) => exitCodeIn('ferry', outcome));
    assert.deepEqual(codes('ALREADY_INSTALLED', 'BOOT_FIRMWARE_REBOOT_FIRST', 'REBOOT_REQUIRED'), [0, 90, 100]);
    assert.deepEqual(codes('RESTART_ENGINE_REQUIRED', 'APPS_SYNCED'), [101, 101]);
    assert.deepEqual(
      codes('UPDATE_SUCCEEDED', 'NOTHING_PENDING', 'UPDATE_SUCCEEDED_BOOT_FIRMWARE', 'ROLLED_BACK'),
      [0, 0, 90, 99],
    );
    assert.deepEqual(
      codes('APPS_FAILED_REBOOT_TO_ROLLBACK', 'APPS_ROLLBACK_FAILED', 'APPS_FAILED_NO_ROLLBACK'),
      [100, 110, 120],
    );
  });

  test("aktualizr-lite's table: 10 for an apps-only install, 40 for nothing pending, 5 for a boot-firmware success", () => {
    const codes = (...outcomes: Outcome[]) => outcomes.map((outcome) => exitCodeIn('aktualizr-lite', outcome));
    assert.deepEqual(codes('RESTART_ENGINE_REQUIRED', 'APPS_SYNCED'), [10, 10]);
    assert.deepEqual(codes('NOTHING_PENDING', 'APPS_RESTORED'), [40, 40]);
    assert.deepEqual(codes('UPDATE_SUCCEEDED_BOOT_FIRMWARE', 'APPS_ROLLBACK_FAILED'), [5, 120]);
    assert.deepEqual(codes('CHECK_UP_TO_DATE', 'CHECK_UPDATE_AVAILABLE', 'CHECK_APPS_TO_SYNC'), [0, 16, 17]);
    assert.deepEqual(
      codes('ALREADY_INSTALLED', 'REBOOT_REQUIRED', 'DOWNGRADE_REFUSED', 'INSTALL_PENDING'),
      [0, 100, 102, 30],
    );
  });

  test("in aktualizr-lite's table no failure of a device command answers a code aktualizr-lite calls a success", () => {
    // aktualizr-lite's IsSuccessCode, less 100 (aklite-offline's run answers it for an apps failure that rolls back).
    const successes = new Set([0, 3, 5, 10, 16, 17, 18]);
    for (const [name, info] of Object.entries(OUTCOMES as Record<string, OutcomeInfo>)) {
      if (info.kind !== 'failure' || !forDevice(info)) continue;
      const code = exitCodeIn('aktualizr-lite', name as Outcome);
      assert.ok(!successes.has(code), `${name} answers ${code}`);
    }
  });

  test('[ferry] exit_codes = "aktualizr-lite": check answers 16, run with nothing pending 40, --json says so', async () => {
    const device = await makeDevice(factory, factory.v1);
    const codes = await akliteCodesFragment();
    const check = await untouched(device, 'check', '-c', device.configDir, '-c', codes, '-s', bundleV2);
    assert.equal(check.code, 16, check.stderr);
    const json = await untouched(device, 'check', '-c', device.configDir, '-c', codes, '-s', bundleV2, '--json');
    assert.equal((JSON.parse(json.stdout) as { exitCode: number }).exitCode, 16);
    const run = await akliteOffline('run', '-c', device.configDir, '-c', codes);
    assert.equal(run.code, 40, run.stderr);
    assert.equal((await cli('run', '--config', device.configDir)).code, 0, 'the documented table without the key');
    // A refusal is recorded with the code the command answered.
    const tampered = await exportTo(factory, factory.v2);
    await flipSignatureBit(tampered, 'targets.json');
    await fs.writeFile(path.join(tampered, 'tuf', 'targets.json'), '{"signed": ');
    const refused = await akliteOffline('install', '-c', device.configDir, '-c', codes, '-s', tampered);
    assert.equal(refused.code, 11, 'malformed metadata is 11 in aktualizr-lite (16 is an update there)');
    assert.equal((await statusOf(device))['lastError'].exitCode, 11);
  });

  test('a configuration that asks for aktualizr-lite codes and is invalid otherwise: 1, as aktualizr-lite answers', async () => {
    const device = await makeDevice(factory, factory.v1);
    const broken = path.join(await tempDir('broken'), 'broken.toml');
    await fs.writeFile(broken, '[bootloader]\nrollback_mode = "lilo"\n');
    const codes = await akliteCodesFragment();
    const result = await akliteOffline('current', '-c', device.configDir, '-c', broken, '-c', codes);
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /rollback_mode/);
    assert.equal((await akliteOffline('current', '-c', device.configDir, '-c', broken)).code, 3);
  });

  test('an exit_codes value that is neither table: 3, the configuration is invalid', async () => {
    const device = await makeDevice(factory, factory.v1);
    const result = await akliteOffline('current', '-c', device.configDir, '-c', await akliteCodesFragment('aklite'));
    assert.equal(result.code, 3, result.stderr);
    assert.match(result.stderr, /\[ferry\] exit_codes must be one of "ferry", "aktualizr-lite"/);
  });

  test('--help of the device commands names the aktualizr-lite codes beside the documented ones', async () => {
    const help = (await akliteOffline('run', '--help')).stdout;
    assert.match(help, /exit_codes = "aktualizr-lite"/);
    assert.match(help, /\b40\b.*nothing was pending/);
  });
});
