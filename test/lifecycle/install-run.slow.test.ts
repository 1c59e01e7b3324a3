import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { akliteOffline, cli, startFerryProcess, waitUntilStopped } from '../support/cli.js';
import { buildFactory, exportTo, OTHER_HARDWARE_ID, type TestFactory } from '../support/factory.js';
import {
  assertRefused,
  assertRefusedUntouched,
  makeDevice,
  statusOf as status,
  trustedMetadata,
} from '../support/sim-device.js';
import { buildFactory as buildAnotherFactory } from '../support/factory.js';
import { flipSignatureBit, pastDate, resignBundleRole, rotateRootKey } from '../support/tamper.js';

let factory: TestFactory;
let bundleV2: string;

before(async () => {
  factory = await buildFactory();
  bundleV2 = await exportTo(factory, factory.v2);
});

describe('install, reboot, run on a simulated device (real ostree and fw_setenv)', () => {
  test('happy path: install 100, run before reboot 100, reboot, run 0, status shows v2 booted', async () => {
    const device = await makeDevice(factory, factory.v1);
    const install = await cli('install', '--config', device.configDir, '--src-dir', bundleV2);
    assert.equal(install.code, 100, install.stderr);
    assert.match(install.stdout, /reboot/);

    const env = await device.device.boot.env.read();
    assert.equal(env['upgrade_available'], '1');
    assert.equal(env['bootcount'], '0');
    const deployments = await device.device.sysroot.deployments();
    assert.equal(deployments[0]!.commit, factory.commits[factory.v2]);
    assert.equal(deployments[1]!.commit, factory.commits[factory.v1]);

    const pending = await status(device);
    assert.equal(pending['pending'].target.name, factory.v2);
    assert.equal(pending['booted'].target, factory.v1);

    const beforeReboot = await device.fingerprint();
    const early = await cli('run', '--config', device.configDir);
    assert.equal(early.code, 100);
    assert.match(early.stdout, /reboot/);
    assert.equal(await device.fingerprint(), beforeReboot, 'run before the reboot must change nothing');

    assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
    const run = await cli('run', '--config', device.configDir);
    assert.equal(run.code, 0, run.stderr);

    const done = await status(device);
    assert.equal(done['booted'].target, factory.v2);
    assert.equal(done['booted'].commit, factory.commits[factory.v2]);
    assert.equal(done['state'], 'DONE');
    assert.equal(done['pending'], null);
    assert.equal(done['current'].name, factory.v2);
    assert.equal(done['rollback'].name, factory.v1);
    const after = await device.device.boot.env.read();
    assert.equal(after['upgrade_available'], '0');

    const again = await cli('run', '--config', device.configDir);
    assert.equal(again.code, 0);
    assert.match(again.stdout, /nothing/);
  });

  test('the same bundle on a device that already runs its target exits 0 and installs nothing', async () => {
    const device = await makeDevice(factory, factory.v2);
    const before = await device.fingerprint();
    const result = await cli('install', '--config', device.configDir, '--src-dir', bundleV2);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /already runs/);
    assert.equal(await device.fingerprint(), before);
    assert.equal((await status(device))['state'], 'DONE', 'not left in QUEUED, as if an install had been cut off');
    const run = await cli('run', '--config', device.configDir);
    assert.equal(run.code, 0, run.stderr);
  });

  test('aklite-offline install and run behave the same', async () => {
    const device = await makeDevice(factory, factory.v1);
    assert.equal((await akliteOffline('install', '--config', device.configDir, '--src-dir', bundleV2)).code, 100);
    assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
    assert.equal((await akliteOffline('run', '--config', device.configDir)).code, 0);
    assert.equal((await status(device))['booted'].target, factory.v2);
  });

  test('wrong hardware id: 7, device unchanged', async () => {
    const device = await makeDevice(factory, factory.v1, { hardwareId: OTHER_HARDWARE_ID });
    await assertRefused(device, bundleV2, 7, /hardware id "other-board"/);
  });

  test('wrong tag: 15, device unchanged', async () => {
    const device = await makeDevice(factory, factory.v1, { tags: ['devel'] });
    await assertRefused(device, bundleV2, 15, /tag "main".*"devel"/);
  });

  test('a production device refuses a ci bundle: 15, device unchanged', async () => {
    const device = await makeDevice(factory, factory.v1, { production: true });
    await assertRefused(device, bundleV2, 15, /"ci" bundle/);
  });

  for (const role of ['timestamp', 'snapshot', 'targets'] as const) {
    test(`expired ${role}.json: 12, device unchanged`, async () => {
      const bundle = await exportTo(factory, factory.v2);
      await resignBundleRole(factory.repo, bundle, role, (signed) => ({ ...signed, expires: pastDate(1) }));
      const device = await makeDevice(factory, factory.v1);
      await assertRefused(device, bundle, 12, /expired/);
    });
  }

  test('a bit flipped in a signature: 11, device unchanged', async () => {
    const bundle = await exportTo(factory, factory.v2);
    await flipSignatureBit(bundle, 'targets.json');
    const device = await makeDevice(factory, factory.v1);
    await assertRefused(device, bundle, 11, /signature|threshold/i);
  });

  test('the commit missing from ostree_repo/: 8, device unchanged', async () => {
    const bundle = await exportTo(factory, factory.v2);
    const commit = factory.commits[factory.v2]!;
    await fs.rm(path.join(bundle, 'ostree_repo', 'objects', commit.slice(0, 2), `${commit.slice(2)}.commit`));
    const device = await makeDevice(factory, factory.v1);
    await assertRefused(device, bundle, 8, new RegExp(`lacks commit ${commit}`));
  });

  test('a --src-dir that is not a bundle: 13, nothing written, not even the status record', async () => {
    const device = await makeDevice(factory, factory.v1);
    await assertRefusedUntouched(device, path.join(factory.dir, 'no-such-bundle'), 13, /cannot open the bundle/);
  });

  test('a rootfs that does not boot: U-Boot falls back, run exits 99 and records the target as failed', async () => {
    const bundle = await exportTo(factory, factory.v3BootFails);
    const device = await makeDevice(factory, factory.v2);
    assert.equal((await cli('install', '--config', device.configDir, '--src-dir', bundle)).code, 100);
    const reboot = await cli('sim', 'reboot', device.dir);
    assert.equal(reboot.code, 0, reboot.stderr);
    assert.match(reboot.stdout, /fell back/);
    const env = await device.device.boot.env.read();
    assert.equal(env['bootcount'], '4', 'U-Boot counted bootlimit+1 boots before falling back');

    const run = await cli('run', '--config', device.configDir, '--json');
    assert.equal(run.code, 99, run.stderr);
    const report = JSON.parse(run.stdout);
    assert.equal(report.exitCode, 99);
    assert.equal(report.failed.name, factory.v3BootFails);

    const after = await status(device);
    assert.equal(after['booted'].target, factory.v2);
    assert.equal(after['state'], 'ERROR');
    assert.equal(after['pending'], null);
    assert.deepEqual(
      after['failedTargets'].map((entry: any) => entry.target.name),
      [factory.v3BootFails],
    );
    const deployments = await device.device.sysroot.deployments();
    assert.deepEqual(
      deployments.map((deployment) => deployment.commit),
      [factory.commits[factory.v2]],
    );
    const cleared = await device.device.boot.env.read();
    assert.equal(cleared['upgrade_available'], '0');
    assert.equal(cleared['bootcount'], '0');

    // The device keeps booting the good deployment afterwards.
    assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
    assert.equal((await status(device))['booted'].target, factory.v2);
  });

  test('--json on a refusal carries the same reason and code', async () => {
    const device = await makeDevice(factory, factory.v1, { hardwareId: OTHER_HARDWARE_ID });
    const result = await cli('install', '--config', device.configDir, '--src-dir', bundleV2, '--json');
    assert.equal(result.code, 7);
    const report = JSON.parse(result.stdout);
    assert.equal(report.exitCode, 7);
    assert.equal(report.outcome, 'WRONG_HARDWARE_ID');
    assert.match(report.message, /other-board/);
    assert.equal(result.stderr.trim(), `ferry: ${report.message}`);
  });

  test('the device walks the root chain from the root it trusts, and trusts the newest root after the install', async () => {
    const rotated = await buildAnotherFactory();
    const device = await makeDevice(rotated, rotated.v1);
    assert.equal(await rotateRootKey(rotated.repo), 2);
    const bundle = await exportTo(rotated, rotated.v2);
    assert.deepEqual(
      (await fs.readdir(path.join(bundle, 'tuf'))).filter((name) => name.endsWith('.root.json')).sort(),
      ['1.root.json', '2.root.json'],
    );
    const result = await cli('install', '--config', device.configDir, '--src-dir', bundle);
    assert.equal(result.code, 100, result.stderr);
    const trusted = await trustedMetadata(device, 'root.json');
    assert.equal(trusted.signed.version, 2);
  });

  test('a refused bundle with a newer root leaves the trusted root.json as it was (tuf-js works on a scratch copy)', async () => {
    const rotated = await buildAnotherFactory();
    const device = await makeDevice(rotated, rotated.v1);
    await rotateRootKey(rotated.repo);
    const bundle = await exportTo(rotated, rotated.v2);
    await resignBundleRole(rotated.repo, bundle, 'timestamp', (signed) => ({ ...signed, expires: pastDate(1) }));
    await assertRefused(device, bundle, 12, /timestamp\.json.*expired/);
    const trusted = await trustedMetadata(device, 'root.json');
    assert.equal(trusted.signed.version, 1);
  });

  test('a bundle on a read-only mount installs (the stick is never written)', async (t) => {
    const mountPoint = path.join(path.dirname(bundleV2), 'read-only');
    await fs.mkdir(mountPoint, { recursive: true });
    const bind = spawnSync('mount', ['--bind', bundleV2, mountPoint]);
    if (bind.status !== 0) {
      // Mounting needs root and a mount namespace that allows it; CI has both, so there it must work.
      assert.notEqual(process.env['CI'], 'true', `mount failed in CI: ${bind.stderr}`);
      t.skip('mount is not permitted here');
      return;
    }
    try {
      assert.equal(spawnSync('mount', ['-o', 'remount,ro,bind', mountPoint]).status, 0);
      await assert.rejects(fs.writeFile(path.join(mountPoint, 'probe'), 'x'), /EROFS/);
      const device = await makeDevice(factory, factory.v1);
      const result = await cli('install', '--config', device.configDir, '--src-dir', mountPoint);
      assert.equal(result.code, 100, result.stderr);
    } finally {
      spawnSync('umount', [mountPoint]);
    }
  });

  test('a second install refused while an update is pending leaves the state of that update; the refusal goes to the history', async () => {
    const device = await makeDevice(factory, factory.v1);
    assert.equal((await cli('install', '--config', device.configDir, '--src-dir', bundleV2)).code, 100);
    const pending = await status(device);
    const tampered = await exportTo(factory, factory.v2);
    await flipSignatureBit(tampered, 'targets.json');
    for (const [bundle, code] of [
      [await exportTo(factory, factory.v2), 30],
      [tampered, 11],
    ] as const) {
      const refused = await cli('install', '--config', device.configDir, '--src-dir', bundle);
      assert.equal(refused.code, code, refused.stderr);
      assert.equal(refused.stderr.trimEnd().split('\n').length, 1, refused.stderr);
      const after = await status(device);
      for (const field of ['state', 'reason', 'progress', 'log', 'lastError', 'pending', 'lastMedia']) {
        assert.deepEqual(after[field], pending[field], `${field} is that of the pending update`);
      }
      assert.equal((await fs.readFile(device.device.paths.updateStateFile, 'utf8')).trim(), 'INPROGRESS');
      const last = after['history'].at(-1);
      assert.equal(last.command, 'install');
      assert.equal(last.state, 'WONTGO');
      assert.equal(last.exitCode, code);
    }
    assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
    const run = await cli('run', '--config', device.configDir);
    assert.equal(run.code, 0, run.stderr);
    assert.equal((await status(device))['current'].name, factory.v2);
  });

  test('a successful run clears the last error of an earlier refusal', async () => {
    const device = await makeDevice(factory, factory.v1);
    const tampered = await exportTo(factory, factory.v2);
    await flipSignatureBit(tampered, 'targets.json');
    assert.equal((await cli('install', '--config', device.configDir, '--src-dir', tampered)).code, 11);
    assert.equal((await status(device))['lastError'].exitCode, 11);
    assert.equal((await cli('install', '--config', device.configDir, '--src-dir', bundleV2)).code, 100);
    assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
    const run = await cli('run', '--config', device.configDir);
    assert.equal(run.code, 0, run.stderr);
    const done = await status(device);
    assert.equal(done['state'], 'DONE');
    assert.equal(done['lastError'], null);
    assert.match((await cli('status', '--config', device.configDir)).stdout, /last error: none/);
  });

  test('a deploy that fails and an undo that fails too: 34, the pending record stays, and run finishes the undo', async () => {
    const device = await makeDevice(factory, factory.v1);
    const deploymentsBefore = await device.device.sysroot.deployments();
    const child = startFerryProcess(['install', '--config', device.configDir, '--src-dir', bundleV2], {
      FERRY_PAUSE_AT: 'install.rootfs-deploy',
    });
    await waitUntilStopped(child.pid);
    // The boot trial is armed; now the deployment cannot be written, nor the bootloader env to end the trial.
    const deployDir = path.join(device.config.sysroot, 'ostree', 'deploy', 'lmp', 'deploy');
    const envCopies = ['uboot.env', 'uboot-redund.env'].map((copy) => path.join(device.dir, 'boot-env', copy));
    const locked = [deployDir, ...envCopies];
    for (const file of locked) {
      const chattr = spawnSync('chattr', ['+i', file], { encoding: 'utf8' });
      assert.equal(chattr.status, 0, `chattr +i ${file}: ${chattr.stderr}`);
    }
    try {
      process.kill(child.pid, 'SIGCONT');
      const result = await child.result;
      assert.equal(result.code, 34, `${result.stdout}${result.stderr}`);
      assert.match(result.stderr, /deploying target .* failed.*undoing it failed too.*run `run`/);
      assert.equal(result.stderr.trimEnd().split('\n').length, 1);
    } finally {
      for (const file of locked) spawnSync('chattr', ['-i', file]);
    }
    const failed = await status(device);
    assert.equal(failed['state'], 'ERROR');
    assert.equal(failed['pending']?.target.name, factory.v2, 'what run needs to finish the undo is kept');
    assert.equal(failed['pending'].phase, 'deploying');
    assert.equal((await device.device.boot.env.read())['upgrade_available'], '1', 'the trial is still armed');

    const run = await cli('run', '--config', device.configDir);
    assert.equal(run.code, 32, run.stderr);
    const undone = await status(device);
    assert.equal(undone['pending'], null);
    assert.equal(undone['current'].name, factory.v1);
    assert.equal((await device.device.boot.env.read())['upgrade_available'], '0');
    assert.deepEqual(await device.device.sysroot.deployments(), deploymentsBefore);
    assert.equal((await cli('install', '--config', device.configDir, '--src-dir', bundleV2)).code, 100);
  });

  test('a torn status record is moved aside and rebuilt from the device; the update still completes', async () => {
    const device = await makeDevice(factory, factory.v1);
    assert.equal((await cli('install', '--config', device.configDir, '--src-dir', bundleV2)).code, 100);
    await fs.writeFile(device.device.paths.statusFile, '{"schema":1,"state":"INPROGR');
    const early = await cli('run', '--config', device.configDir);
    assert.equal(early.code, 100, early.stderr);
    await fs.access(`${device.device.paths.statusFile}.broken`);
    const rebuilt = await status(device);
    assert.equal(rebuilt['pending'].target.name, factory.v2);
    assert.equal(rebuilt['current'].name, factory.v1);
    assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
    await fs.writeFile(device.device.paths.statusFile, 'not json at all');
    const run = await cli('run', '--config', device.configDir);
    assert.equal(run.code, 0, run.stderr);
    const done = await status(device);
    assert.equal(done['current'].name, factory.v2);
    assert.equal(done['state'], 'DONE');
  });
});
