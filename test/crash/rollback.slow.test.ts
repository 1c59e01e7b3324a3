import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { STEPS, STEP_NAMES } from '../../src/lifecycle/steps.js';
import {
  CRASH_ENGINES,
  crashPointsOf,
  journaledSteps,
  startCrashRig,
  type Scenario,
} from '../support/crash-harness.js';
import { statusOf } from '../support/sim-device.js';

/**
 * Power cut at every step of the ways back: the apps of a new target fail (with a new rootfs, and with apps alone),
 * a new rootfs never boots, and an interrupted install is undone. The device must end on the old target, its apps
 * running, the bad target remembered as failed; an undone install must still go through afterwards.
 */

const rig = await startCrashRig(after);
const factory = rig.factory;

const scenarios: Scenario[] = [
  {
    name: 'apps fail on a new rootfs',
    path: 'apps-rollback',
    kind: 'rootfs',
    from: factory.targets.base,
    to: factory.targets.crasherNewRootfs,
    sequence: [
      { do: 'install', expect: 100 },
      { do: 'power-cycle' },
      { do: 'run', expect: 100 },
      { do: 'power-cycle' },
      { do: 'run', expect: 99 },
    ],
    ends: 'old',
  },
  {
    name: 'apps fail, same rootfs',
    path: 'apps-rollback',
    kind: 'apps',
    from: factory.targets.base,
    to: factory.targets.crasher,
    sequence: [{ do: 'install', expect: 101 }, { do: 'restart-engine' }, { do: 'run', expect: 99 }],
    ends: 'old',
  },
  {
    name: 'a rootfs that never boots',
    path: 'bootloader-rollback',
    kind: 'rootfs',
    from: factory.targets.base,
    to: factory.targets.bootFails,
    sequence: [{ do: 'install', expect: 100 }, { do: 'power-cycle' }, { do: 'run', expect: 99 }],
    ends: 'old',
  },
  {
    name: 'an install killed after its deployment, undone by run',
    path: 'undo-interrupted',
    kind: 'rootfs',
    from: factory.targets.base,
    to: factory.targets.mixed,
    sequence: [
      { do: 'install', expect: 100, crashAt: 'install.rootfs-deploy:done' },
      { do: 'run', expect: 32 },
    ],
    ends: 'old-or-new',
  },
];

test('every step of the table is covered by a crash scenario', () => {
  const covered = new Set(
    [...scenarios, { path: 'update', kind: 'rootfs' }, { path: 'update', kind: 'apps' }].flatMap((scenario) =>
      crashPointsOf(scenario as Scenario).map((point) => point.step),
    ),
  );
  assert.deepEqual(
    STEP_NAMES.filter((step) => !covered.has(step)),
    [],
  );
  assert.ok(Object.keys(STEPS).length >= 20);
});

for (const scenario of scenarios) {
  describe(`crash harness: ${scenario.name}`, { concurrency: CRASH_ENGINES }, () => {
    test("the scenario takes each of its path's steps, in the table's order", async (t) => {
      const device = await rig.freshDevice(t, scenario.from);
      await rig.playUntilCrash(device, scenario, 'none').catch((error: Error) => {
        assert.match(error.message, /never reached none/);
      });
      const declared = [...new Set(crashPointsOf(scenario).map((point) => point.step))];
      const taken = (await journaledSteps(device)).filter((step) => declared.includes(step as never));
      assert.deepEqual(taken, declared);
      await rig.discard(device);
    });

    for (const { step, point } of crashPointsOf(scenario)) {
      test(`killed at ${point}: power cycle, recovery, back on the old target`, async (t) => {
        const device = await rig.freshDevice(t, scenario.from);
        const trail = await rig.playUntilCrash(device, scenario, point);
        assert.equal(
          (await statusOf(device))['interrupted']?.step,
          step,
          'status names the step the journal stopped in',
        );
        await rig.powerCycle(device);
        const codes = await rig.recover(device, scenario.to);
        const allowed = scenario.ends === 'old' ? [scenario.from] : [scenario.from, scenario.to];
        await rig.assertSound(device, scenario, allowed).catch((error: Error) => {
          throw new Error(`${trail.join(', ')}; recovery ${codes.join(', ')}: ${error.message}`, { cause: error });
        });
        if (scenario.ends === 'old-or-new') {
          await rig.installAgain(device, scenario);
        } else {
          const failed = (await statusOf(device))['failedTargets'].map((entry: any) => entry.target.name);
          assert.ok(failed.includes(scenario.to), `"${scenario.to}" is remembered as failed`);
          const again = await rig.ferry(device, 'install', scenario.to, {});
          assert.equal(again.code, 77, again.stderr);
        }
        await rig.discard(device);
      });
    }
  });
}

test('install after an install killed mid-deployment (no reboot): it undoes the half-made update itself and installs', async (t) => {
  const device = await rig.freshDevice(t, factory.targets.base);
  const to = factory.targets.mixed;
  await rig.bundleFor(to);
  const killed = await rig.ferry(device, 'install', to, { FERRY_CRASH_AT: 'install.rootfs-deploy:done' });
  assert.equal(killed.signal, 'SIGKILL');
  const halfway = await statusOf(device);
  assert.equal(halfway['pending'].phase, 'deploying');

  const install = await rig.ferry(device, 'install', to, {});
  assert.equal(install.code, 100, install.stderr);
  const staged = await statusOf(device);
  assert.equal(staged['pending'].phase, 'staged');
  const deployments = await device.device.sysroot.deployments();
  assert.equal(
    deployments.filter((deployment) => deployment.commit === factory.rootfs.b).length,
    1,
    'one deployment of the target, not two',
  );
  await rig.powerCycle(device);
  const run = await rig.ferry(device, 'run', to, {});
  assert.equal(run.code, 0, run.stderr);
  assert.equal((await statusOf(device))['current'].name, to);
  assert.deepEqual(device.daemon.running(), rig.expectedContainers(to));
  await rig.discard(device);
});

test('a rootfs that never boots, its install cut once deployed, and the run that finishes the fallback cut once it removed the deployment: the next run still finishes the fallback (99) and remembers the target as failed', async (t) => {
  const device = await rig.freshDevice(t, factory.targets.base);
  const to = factory.targets.bootFails;
  await rig.bundleFor(to);
  const install = await rig.ferry(device, 'install', to, { FERRY_CRASH_AT: 'install.rootfs-deploy:done' });
  assert.equal(install.signal, 'SIGKILL');
  assert.equal((await statusOf(device))['pending'].phase, 'deploying');
  await rig.powerCycle(device);
  const cut = await rig.ferry(device, 'run', to, { FERRY_CRASH_AT: 'run.fallback-undeploy:done' });
  assert.equal(cut.signal, 'SIGKILL', `the run took the bootloader-rollback path: ${cut.stderr}`);
  await rig.powerCycle(device);
  const run = await rig.ferry(device, 'run', to, {});
  assert.equal(run.code, 99, run.stderr);
  const status = await statusOf(device);
  assert.equal(status['current'].name, factory.targets.base);
  assert.ok(
    status['failedTargets'].some((entry: any) => entry.target.name === to),
    `"${to}" is remembered as failed`,
  );
  await rig.discard(device);
});
