import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { BootFlags } from '../../src/device/bootloader-env.js';
import { emptyStatus, type DeviceStatus, type TargetRef } from '../../src/device/status-file.js';
import { planInstall } from '../../src/lifecycle/plan.js';
import { planRun } from '../../src/lifecycle/run-plan.js';
import type { Target } from '../../src/tuf/target.js';

const ref = (name: string, version: string, n: number): TargetRef => ({
  name,
  version,
  commit: n.toString(16).padStart(64, '0'),
  apps: {},
});
const v1 = ref('os-1', '1', 1);
const v2 = ref('os-2', '2', 2);
const asTarget = (target: TargetRef): Target => ({ ...target, hardwareIds: ['board'], tags: ['main'] });
const flags = (overrides: Partial<BootFlags> = {}): BootFlags => ({
  upgradeAvailable: false,
  bootcount: 0,
  bootUpgradeAvailable: false,
  ...overrides,
});
const runningV1: DeviceStatus = { ...emptyStatus(), state: 'DONE', current: v1 };
const pendingV2: DeviceStatus = {
  ...runningV1,
  state: 'INPROGRESS',
  pending: {
    phase: 'staged',
    target: v2,
    previous: v1,
    installedAt: '2026-11-23T00:00:00Z',
    completion: 'reboot',
    rootfsChanged: true,
    repair: false,
  },
};

const deployingV2: DeviceStatus = {
  ...pendingV2,
  pending: { ...pendingV2.pending!, phase: 'deploying', repair: false },
};

function describeDecision(decision: { action: string; error?: { outcome: string } }): string {
  return decision.action === 'refuse' ? `refuse ${decision.error!.outcome}` : decision.action;
}

describe('install planner', () => {
  const cases: Array<[string, Parameters<typeof planInstall>[0], string]> = [
    [
      'a newer target on a running device',
      { status: runningV1, booted: v1, flags: flags(), selected: asTarget(v2), known: [], force: false },
      'stage',
    ],
    [
      'the target the device already boots',
      { status: runningV1, booted: v1, flags: flags(), selected: asTarget(v1), known: [], force: false },
      'already-installed',
    ],
    [
      'an older target',
      {
        status: { ...runningV1, current: v2 },
        booted: v2,
        flags: flags(),
        selected: asTarget(v1),
        known: [],
        force: false,
      },
      'refuse DOWNGRADE_REFUSED',
    ],
    [
      'an older target with --force',
      {
        status: { ...runningV1, current: v2 },
        booted: v2,
        flags: flags(),
        selected: asTarget(v1),
        known: [],
        force: true,
      },
      'stage',
    ],
    [
      'an install already pending',
      { status: pendingV2, booted: v1, flags: flags(), selected: asTarget(v2), known: [], force: false },
      'refuse INSTALL_PENDING',
    ],
    [
      'a boot firmware update waits for a reboot',
      {
        status: runningV1,
        booted: v1,
        flags: flags({ bootUpgradeAvailable: true }),
        selected: asTarget(v2),
        known: [],
        force: false,
      },
      'refuse BOOT_FIRMWARE_REBOOT_FIRST',
    ],
  ];
  for (const [name, input, expected] of cases) {
    test(`${name}: ${expected}`, () => assert.equal(describeDecision(planInstall(input)), expected));
  }

  const withApps = (target: TargetRef): TargetRef => ({
    ...target,
    apps: {
      app: { uri: 'r/f/app@sha256:' + 'a'.repeat(64), digest: 'sha256:' + 'a'.repeat(64), restartPolicy: 'container' },
    },
  });
  const runningApps: DeviceStatus = { ...runningV1, current: withApps(v1) };
  const sameTarget = { status: runningApps, booted: v1, flags: flags(), selected: asTarget(withApps(v1)), known: [] };

  test('the running target with its apps out of sync: staged as an apps sync (101), previous the same target', () => {
    const decision = planInstall({ ...sameTarget, force: false, appsOutOfSync: ['app "app" is not in the app store'] });
    assert.equal(decision.action, 'stage');
    if (decision.action !== 'stage') return;
    assert.equal(decision.sync, true);
    assert.equal(decision.transition.kind, 'restart-engine');
    assert.equal(decision.transition.rootfsChanged, false);
    assert.match(decision.transition.reasons.join(), /not in the app store/);
    assert.deepEqual(decision.previous, withApps(v1));
  });

  test('the running target with its apps in sync: already installed; with --force its apps are synced again', () => {
    assert.equal(planInstall({ ...sameTarget, force: false, appsOutOfSync: [] }).action, 'already-installed');
    const forced = planInstall({ ...sameTarget, force: true, appsOutOfSync: [] });
    assert.equal(forced.action === 'stage' && forced.sync, true);
  });

  test('--force on the running target without apps: nothing to sync, already installed', () => {
    const decision = planInstall({
      status: runningV1,
      booted: v1,
      flags: flags(),
      selected: asTarget(v1),
      known: [],
      force: true,
    });
    assert.equal(decision.action, 'already-installed');
  });

  test('no record: the running target is the highest known version with the booted commit', () => {
    const older = { ...asTarget(withApps(v1)), name: 'os-0', version: '0' };
    const decision = planInstall({
      status: emptyStatus(),
      booted: v1,
      flags: flags(),
      selected: asTarget(withApps(v1)),
      known: [older, asTarget(withApps(v1))],
      force: false,
      appsOutOfSync: ['app "app": service "main" has no container'],
    });
    assert.equal(decision.action === 'stage' && decision.sync, true);
    assert.equal(decision.action === 'stage' && decision.previous?.name, 'os-1');
  });

  test('the previous target is what the device boots, so a rollback knows where to go', () => {
    const decision = planInstall({
      status: runningV1,
      booted: v1,
      flags: flags(),
      selected: asTarget(v2),
      known: [],
      force: false,
    });
    assert.equal(decision.action, 'stage');
    assert.deepEqual(decision.action === 'stage' && decision.previous, v1);
  });
});

describe('run planner', () => {
  const cases: Array<[string, Parameters<typeof planRun>[0], string]> = [
    [
      'nothing pending',
      { status: runningV1, rebootSentinelPresent: false, booted: v1, flags: flags(), defaultCommit: v1.commit },
      'nothing-pending',
    ],
    [
      'before the reboot (sentinel present), even though v1 is booted',
      {
        status: pendingV2,
        rebootSentinelPresent: true,
        booted: v1,
        flags: flags({ upgradeAvailable: true }),
        defaultCommit: v2.commit,
      },
      'reboot-first',
    ],
    [
      'booted on the new target',
      {
        status: pendingV2,
        rebootSentinelPresent: false,
        booted: v2,
        flags: flags({ upgradeAvailable: true, bootcount: 1 }),
        defaultCommit: v2.commit,
      },
      'commit',
    ],
    [
      'booted on the previous target after the reboot',
      {
        status: pendingV2,
        rebootSentinelPresent: false,
        booted: v1,
        flags: flags({ upgradeAvailable: true, bootcount: 4 }),
        defaultCommit: v2.commit,
      },
      'rolled-back',
    ],
    [
      'booted on something else',
      {
        status: pendingV2,
        rebootSentinelPresent: false,
        booted: ref('x', '9', 9),
        flags: flags(),
        defaultCommit: null,
      },
      'refuse DEVICE_STATE_UNREADABLE',
    ],
    // An install that stopped before it recorded "staged": the boot state may be written in part.
    [
      'interrupted install, same boot (marker there), deployment written',
      {
        status: deployingV2,
        rebootSentinelPresent: true,
        booted: null,
        flags: flags({ upgradeAvailable: true }),
        defaultCommit: v2.commit,
      },
      'undo-interrupted',
    ],
    [
      'interrupted install, rebooted, the deployment never became the default',
      {
        status: deployingV2,
        rebootSentinelPresent: false,
        booted: v1,
        flags: flags({ upgradeAvailable: true, bootcount: 1 }),
        defaultCommit: v1.commit,
      },
      'undo-interrupted',
    ],
    [
      'interrupted install, rebooted, no trial, the deployment is not the default',
      { status: deployingV2, rebootSentinelPresent: false, booted: v1, flags: flags(), defaultCommit: v1.commit },
      'undo-interrupted',
    ],
    [
      'interrupted install, rebooted into its target: the deployment was complete',
      {
        status: deployingV2,
        rebootSentinelPresent: false,
        booted: v2,
        flags: flags({ upgradeAvailable: true, bootcount: 1 }),
        defaultCommit: v2.commit,
      },
      'commit',
    ],
    [
      'interrupted install, its deployment the default and a trial running, yet the previous one booted',
      {
        status: deployingV2,
        rebootSentinelPresent: false,
        booted: v1,
        flags: flags({ upgradeAvailable: true, bootcount: 4 }),
        defaultCommit: v2.commit,
      },
      'rolled-back',
    ],
    [
      'interrupted install, the bootloader fell back, and the run that finished it was cut once it removed the deployment',
      {
        status: deployingV2,
        rebootSentinelPresent: false,
        booted: v1,
        flags: flags({ upgradeAvailable: true, bootcount: 1 }),
        defaultCommit: v1.commit,
        fallbackInterrupted: true,
      },
      'rolled-back',
    ],
    [
      'interrupted install, booted on something else',
      {
        status: deployingV2,
        rebootSentinelPresent: false,
        booted: ref('x', '9', 9),
        flags: flags(),
        defaultCommit: v2.commit,
      },
      'refuse DEVICE_STATE_UNREADABLE',
    ],
  ];
  for (const [name, input, expected] of cases) {
    test(`${name}: ${expected}`, () => assert.equal(describeDecision(planRun(input)), expected));
  }

  test('a commit reports a boot firmware update when bootupgrade_available=1', () => {
    const decision = planRun({
      status: pendingV2,
      rebootSentinelPresent: false,
      booted: v2,
      flags: flags({ bootUpgradeAvailable: true }),
      defaultCommit: v2.commit,
    });
    assert.equal(decision.action === 'commit' && decision.bootFirmwareUpdated, true);
  });
});
