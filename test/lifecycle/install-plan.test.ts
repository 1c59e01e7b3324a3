import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { before, describe, test } from 'node:test';
import { bundleLayout } from '../../src/bundle/format/bundle-dir.js';
import type { FerryError } from '../../src/errors.js';
import { applyInstall, prepareInstall, type InstallPlan } from '../../src/lifecycle/install.js';
import { Journal } from '../../src/lifecycle/journal.js';
import { loadDeviceStatus } from '../../src/lifecycle/rebuild-status.js';
import { StatusRecorder } from '../../src/lifecycle/status-recorder.js';
import { discardStickScratch } from '../../src/lifecycle/stick-trust.js';
import { buildFactory, exportTo, type TestFactory } from '../support/factory.js';
import { objectsOnlyInBundle } from '../support/hostile.js';
import { makeDevice, type TestDevice } from '../support/sim-device.js';

/**
 * install in two halves: prepareInstall reads and decides (every refusal is thrown there, the device unchanged),
 * applyInstall writes what the plan says.
 */
let factory: TestFactory;
let bundleV2: string;
before(async () => {
  factory = await buildFactory();
  bundleV2 = await exportTo(factory, factory.v2);
});

async function prepare(
  device: TestDevice,
  targetName?: string,
): Promise<{ plan: InstallPlan; recorder: StatusRecorder }> {
  const recorder = new StatusRecorder(device.device, (await loadDeviceStatus(device.device)).status, 'install');
  const plan = await prepareInstall(device.device, recorder, bundleLayout(bundleV2), {
    srcDir: bundleV2,
    ...(targetName === undefined ? {} : { targetName }),
  });
  return { plan, recorder };
}

describe('prepareInstall, then applyInstall', () => {
  test('the plan names the target, the apps to copy and the space; preparing it writes nothing to the device', async () => {
    const device = await makeDevice(factory, factory.v1);
    const before = await device.fingerprint();
    const { plan, recorder } = await prepare(device);
    assert.equal(await device.fingerprint(), before, 'prepareInstall only reads');
    assert.equal(plan.action, 'stage');
    if (plan.action !== 'stage') return;
    assert.equal(plan.decision.target.name, factory.v2);
    assert.equal(plan.decision.transition.rootfsChanged, true);
    assert.ok(plan.needs.rootfsBytes > 0, 'the rootfs objects are counted for the space check');
    assert.equal((await device.device.sysroot.deployments())[0]!.commit, factory.commits[factory.v1]);

    const journal = await Journal.open(device.device.paths.journalFile, 'install');
    try {
      const report = await applyInstall(
        device.device,
        recorder,
        journal,
        bundleLayout(bundleV2),
        plan,
        'IDLE',
        undefined,
      );
      assert.equal(report.outcome, 'REBOOT_REQUIRED', report.message);
    } finally {
      await journal.end('REBOOT_REQUIRED');
      await discardStickScratch(plan.verified);
    }
    assert.notEqual(await device.fingerprint(), before, 'applyInstall wrote');
    assert.equal((await device.device.sysroot.deployments())[0]!.commit, factory.commits[factory.v2]);
  });

  test('a refusal is thrown by prepareInstall, with the device unchanged', async () => {
    const device = await makeDevice(factory, factory.v1);
    const before = await device.fingerprint();
    await assert.rejects(prepare(device, 'no-such-target'), (error: FerryError) => {
      assert.equal(error.outcome, 'TARGET_NOT_IN_BUNDLE');
      return true;
    });
    assert.equal(await device.fingerprint(), before);
  });

  test('an object the bundle lacks (and the device too) is refused by prepareInstall, before the pull', async () => {
    const device = await makeDevice(factory, factory.v1);
    const bundle = await exportTo(factory, factory.v2);
    const [object] = await objectsOnlyInBundle(bundle, device.device.sysroot.repo.path, 'file');
    await fs.rm(object!);
    const before = await device.fingerprint();
    const recorder = new StatusRecorder(device.device, (await loadDeviceStatus(device.device)).status, 'install');
    await assert.rejects(
      prepareInstall(device.device, recorder, bundleLayout(bundle), { srcDir: bundle }),
      (error: FerryError) => {
        assert.equal(error.outcome, 'CONTENT_MISSING');
        assert.match(
          error.message,
          /is incomplete: ostree_repo\/objects\/\S+\.filez \(the file of \/\S*\) is missing$/,
        );
        return true;
      },
    );
    assert.equal(await device.fingerprint(), before);
  });

  test('a device that runs the target: the plan says so, and nothing is staged', async () => {
    const device = await makeDevice(factory, factory.v2);
    const before = await device.fingerprint();
    const { plan } = await prepare(device);
    await discardStickScratch(plan.verified);
    assert.equal(plan.action, 'already-installed');
    assert.equal(plan.action === 'already-installed' ? plan.target.name : undefined, factory.v2);
    assert.equal(await device.fingerprint(), before);
  });
});
