import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { statusOf } from '../support/sim-device.js';
import {
  CRASH_ENGINES,
  crashPointsOf,
  journaledSteps,
  startCrashRig,
  type Scenario,
} from '../support/crash-harness.js';

/**
 * Power cut at every step of `install` and `run`, for an update of the rootfs and its apps and for an update of
 * apps alone: after a power cycle and the recovery sequence, the device boots its default deployment, runs exactly
 * the old or the new target with its apps, and still takes the update.
 */

const rig = await startCrashRig(after);
const factory = rig.factory;

const scenarios: Scenario[] = [
  {
    name: 'rootfs and apps update',
    path: 'update',
    kind: 'rootfs',
    from: factory.targets.base,
    to: factory.targets.mixed,
    sequence: [{ do: 'install', expect: 100 }, { do: 'power-cycle' }, { do: 'run', expect: 0 }],
    ends: 'old-or-new',
  },
  {
    name: 'apps-only update',
    path: 'update',
    kind: 'apps',
    from: factory.targets.base,
    to: factory.targets.heartbeatV2,
    sequence: [{ do: 'install', expect: 101 }, { do: 'restart-engine' }, { do: 'run', expect: 0 }],
    ends: 'old-or-new',
  },
];

for (const scenario of scenarios) {
  describe(`crash harness: ${scenario.name}`, { concurrency: CRASH_ENGINES }, () => {
    test('the table of steps names exactly the steps the update takes, in order', async (t) => {
      const device = await rig.freshDevice(t, scenario.from);
      await rig.playUntilCrash(device, scenario, 'none').catch((error: Error) => {
        assert.match(error.message, /never reached none/);
      });
      const declared = [...new Set(crashPointsOf(scenario).map((point) => point.step))];
      assert.deepEqual(await journaledSteps(device), declared);
      await rig.discard(device);
    });

    for (const { step, point } of crashPointsOf(scenario)) {
      test(`killed at ${point}: power cycle, recovery, sound device, update still goes through`, async (t) => {
        const device = await rig.freshDevice(t, scenario.from);
        const trail = await rig.playUntilCrash(device, scenario, point);
        assert.equal(
          (await statusOf(device))['interrupted']?.step,
          step,
          'status names the step the journal stopped in',
        );
        await rig.powerCycle(device);
        const codes = await rig.recover(device, scenario.to);
        await rig.assertSound(device, scenario, [scenario.from, scenario.to]).catch((error: Error) => {
          throw new Error(`${trail.join(', ')}; recovery ${codes.join(', ')}: ${error.message}`, { cause: error });
        });
        await rig.installAgain(device, scenario);
        await rig.discard(device);
      });
    }
  });
}
