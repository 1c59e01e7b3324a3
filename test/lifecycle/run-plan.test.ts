import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import type { BootFlags } from '../../src/device/bootloader-env.js';
import {
  emptyStatus,
  type DeviceStatus,
  type PendingPhase,
  type PendingUpdate,
  type TargetRef,
} from '../../src/device/status-file.js';
import { FerryError } from '../../src/errors.js';
import { exitCodeOf, OUTCOMES, type Outcome } from '../../src/exit-codes.js';
import {
  afterWindowStart,
  appsSwitchEnd,
  bootTrialEndFailed,
  commitEnd,
  engineUnavailable,
  fallbackEnd,
  planAppsFailed,
  planRun,
  restoreEnd,
  restoreNeeded,
  restoreWanted,
  rootfsReturnEnd,
  undoEnd,
  windowToResume,
  type RunEnd,
  type RunFacts,
} from '../../src/lifecycle/run-plan.js';

/** The run planner as a table: every phase of a pending update, every way `run` ends, no I/O. */

const app = (digest: string) => ({
  uri: `hub/app@sha256:${digest.repeat(64)}`,
  digest: `sha256:${digest.repeat(64)}`,
  restartPolicy: 'container' as const,
});
const ref = (name: string, version: string, n: number, apps: TargetRef['apps'] = {}): TargetRef => ({
  name,
  version,
  commit: n.toString(16).padStart(64, '0'),
  apps,
});
const v1 = ref('os-1', '1', 1, { web: app('a') });
const v2 = ref('os-2', '2', 2, { web: app('b') });
const v2SameRootfs = { ...ref('os-2', '2', 1), apps: { web: app('b') } };
const unknown = ref('unknown', '0', 1);
const AT = '2026-11-23T10:00:00.000Z';
const window = { since: AT, until: '2026-11-23T10:02:00.000Z', boot: 'boot-1' };
const update = { target: v2, previous: v1, installedAt: AT, completion: 'reboot' as const, rootfsChanged: true };
const PENDING = {
  deploying: { ...update, phase: 'deploying', repair: false },
  staged: { ...update, phase: 'staged', repair: false },
  testing: { ...update, phase: 'testing', repair: false, window },
  returning: {
    phase: 'returning',
    target: v1,
    previous: v2,
    from: v2,
    installedAt: AT,
    completion: 'reboot',
    rootfsChanged: true,
    window: null,
  },
} as const satisfies Record<PendingPhase, PendingUpdate>;
const appsOnly: PendingUpdate = {
  ...PENDING.staged,
  target: v2SameRootfs,
  completion: 'restart-engine',
  rootfsChanged: false,
};

const flags = (overrides: Partial<BootFlags> = {}): BootFlags => ({
  upgradeAvailable: false,
  bootcount: 0,
  bootUpgradeAvailable: false,
  ...overrides,
});
const running: DeviceStatus = { ...emptyStatus(), state: 'DONE', current: v1 };
const withPending = (pending: PendingUpdate): DeviceStatus => ({ ...running, state: 'INPROGRESS', pending });
const facts = (status: DeviceStatus, overrides: Partial<RunFacts> = {}): RunFacts => ({
  status,
  rebootSentinelPresent: false,
  booted: { commit: v2.commit },
  flags: flags({ upgradeAvailable: true, bootcount: 1 }),
  defaultCommit: v2.commit,
  ...overrides,
});
const ok = { ok: true, failures: [] };
const failed = { ok: false, failures: ['service "web": exited (1)'] };

/**
 * The outcomes of `run` the planner decides: all but those of the entry point (a bad command line or configuration,
 * the lock) and the catch-all for errors nobody foresaw.
 */
function plannerOutcomes(): Outcome[] {
  const beforeRun = new Set<Outcome>(['OK', 'INTERNAL_ERROR', 'USAGE', 'CONFIG_INVALID', 'LOCKED']);
  return (Object.keys(OUTCOMES) as Outcome[]).filter(
    (outcome) => (OUTCOMES[outcome].commands as readonly string[]).includes('run') && !beforeRun.has(outcome),
  );
}

/** What a row ends in: the outcome, and the state the record moves to ('none' when nothing is written). */
interface Ending {
  readonly outcome: Outcome;
  readonly state: string;
}
function endingOf(end: RunEnd): Ending {
  const { record } = end;
  return { outcome: end.report.outcome, state: record.kind === 'finish' ? record.state : record.kind };
}
function endingOfError(error: FerryError): Ending {
  return { outcome: error.outcome, state: 'ERROR' };
}

/** Runs the planner from planRun through the step results a row supplies, to the run's end. */
function decide(row: Row): Ending {
  const decision = planRun(row.facts);
  switch (decision.action) {
    case 'nothing-pending':
    case 'install-stopped-early':
    case 'reboot-first':
      return endingOf(decision.end);
    case 'refuse':
      return endingOfError(decision.error);
    case 'restore-apps': {
      const elsewhere = restoreWanted(decision.target, row.restore?.bootedCommit ?? decision.target.commit);
      if (elsewhere !== null) return endingOf(elsewhere);
      if (row.restore?.engineDown) return endingOfError(engineUnavailable('the engine is down', undefined));
      const checks = row.restore?.checks ?? { web: ok };
      const restore = restoreNeeded(decision.target, checks);
      if (restore.action === 'end') return endingOf(restore.end);
      return endingOf(restoreEnd(decision.target, Object.keys(restore.down), restore.why, row.restore!.restarted!));
    }
    case 'undo-interrupted':
      return endingOf(undoEnd(decision.target, decision.running, row.appsStart ?? null, AT));
    case 'rolled-back':
      return endingOf(fallbackEnd(row.facts.status, decision.failed, decision.running, row.appsStart ?? null, AT));
    case 'commit': {
      const { pending } = decision;
      if (row.engineDown) return endingOfError(engineUnavailable('the engine is down', undefined));
      const resumed = windowToResume(pending, 'boot-1').window;
      const start = resumed === null ? (row.appsStart ?? ok) : ok;
      const result = start.ok ? (row.appsWatch ?? ok) : start;
      if (start.ok) {
        const next = afterWindowStart(pending, resumed ?? window, row.noWait === true, row.secondsLeft ?? 0);
        if (next.action === 'end') return endingOf(next.end);
      }
      if (!result.ok) {
        const way = planAppsFailed(row.facts.status, pending, result.failures, AT);
        if (way.action === 'end') return endingOf(way.end);
        if (way.action === 'return-to-previous-rootfs') {
          const back = row.wayBack ?? { ok: true };
          return endingOf(rootfsReturnEnd(row.facts.status, pending, way.previous, result.failures, AT, back));
        }
        return endingOf(
          appsSwitchEnd(row.facts.status, pending, way.previous, result.failures, AT, row.appsSwitch ?? ok),
        );
      }
      if (row.trialEndFails) return endingOfError(bootTrialEndFailed('U-Boot env', 'EIO', undefined));
      return endingOf(commitEnd(pending, decision.bootFirmwareUpdated, pending.previous));
    }
  }
}

interface Row {
  readonly name: string;
  readonly phase: PendingPhase | null;
  readonly facts: RunFacts;
  readonly appsStart?: { ok: boolean; failures: readonly string[] };
  readonly appsWatch?: { ok: boolean; failures: readonly string[] };
  readonly appsSwitch?: { ok: boolean; failures: readonly string[] };
  readonly wayBack?: { ok: true } | { ok: false; reason: string; cause: unknown };
  readonly restore?: {
    bootedCommit?: string;
    engineDown?: boolean;
    checks?: Record<string, { ok: boolean; failures: readonly string[] }>;
    restarted?: { ok: boolean; failures: readonly string[] };
  };
  readonly engineDown?: boolean;
  readonly noWait?: boolean;
  readonly secondsLeft?: number;
  readonly trialEndFails?: boolean;
  readonly expected: Ending;
}

const rows: Row[] = [
  // ── nothing pending ──
  {
    name: 'nothing pending, no current target',
    phase: null,
    facts: facts({ ...emptyStatus() }),
    expected: { outcome: 'NOTHING_PENDING', state: 'none' },
  },
  {
    name: 'nothing pending, the current apps all run',
    phase: null,
    facts: facts(running),
    expected: { outcome: 'NOTHING_PENDING', state: 'none' },
  },
  {
    name: 'nothing pending, the record names a target the device does not boot',
    phase: null,
    facts: facts(running),
    restore: { bootedCommit: v2.commit },
    expected: { outcome: 'NOTHING_PENDING', state: 'none' },
  },
  {
    name: 'nothing pending, an app is down and starts again',
    phase: null,
    facts: facts(running),
    restore: { checks: { web: failed }, restarted: ok },
    expected: { outcome: 'APPS_RESTORED', state: 'note' },
  },
  {
    name: 'nothing pending, an app is down and does not start again',
    phase: null,
    facts: facts(running),
    restore: { checks: { web: failed }, restarted: failed },
    expected: { outcome: 'APPS_RESTORE_FAILED', state: 'note' },
  },
  {
    name: 'nothing pending, the engine cannot be reached',
    phase: null,
    facts: facts(running),
    restore: { engineDown: true },
    expected: { outcome: 'ENGINE_UNAVAILABLE', state: 'ERROR' },
  },
  {
    name: 'an install stopped while it copied, before anything was pending',
    phase: null,
    facts: facts({ ...running, state: 'COPYING' }),
    expected: { outcome: 'INSTALL_INTERRUPTED', state: 'WONTGO' },
  },
  // ── deploying ──
  {
    name: 'deploying, the same boot: undone',
    phase: 'deploying',
    facts: facts(withPending(PENDING.deploying), { rebootSentinelPresent: true, booted: null }),
    expected: { outcome: 'INSTALL_INTERRUPTED', state: 'ERROR' },
  },
  {
    name: 'deploying, undone, but the previous apps do not start',
    phase: 'deploying',
    facts: facts(withPending(PENDING.deploying), { booted: { commit: v1.commit }, defaultCommit: v1.commit }),
    appsStart: failed,
    expected: { outcome: 'APPS_ROLLBACK_FAILED', state: 'ERROR' },
  },
  {
    name: 'deploying, yet booted into the target: it completes',
    phase: 'deploying',
    facts: facts(withPending(PENDING.deploying)),
    expected: { outcome: 'UPDATE_SUCCEEDED', state: 'DONE' },
  },
  {
    name: 'deploying, the bootloader fell back',
    phase: 'deploying',
    facts: facts(withPending(PENDING.deploying), {
      booted: { commit: v1.commit },
      flags: flags({ upgradeAvailable: true, bootcount: 4 }),
    }),
    expected: { outcome: 'ROLLED_BACK', state: 'ERROR' },
  },
  {
    name: 'deploying, booted on neither',
    phase: 'deploying',
    facts: facts(withPending(PENDING.deploying), { booted: { commit: '9'.repeat(64) } }),
    expected: { outcome: 'DEVICE_STATE_UNREADABLE', state: 'ERROR' },
  },
  // ── staged ──
  {
    name: 'staged, not rebooted yet',
    phase: 'staged',
    facts: facts(withPending(PENDING.staged), { rebootSentinelPresent: true, booted: null }),
    expected: { outcome: 'REBOOT_NOT_DONE_YET', state: 'none' },
  },
  {
    name: 'staged, booted the target, the apps keep running',
    phase: 'staged',
    facts: facts(withPending(PENDING.staged)),
    expected: { outcome: 'UPDATE_SUCCEEDED', state: 'DONE' },
  },
  {
    name: 'staged, booted the target, the boot firmware was updated too',
    phase: 'staged',
    facts: facts(withPending(PENDING.staged), { flags: flags({ upgradeAvailable: true, bootUpgradeAvailable: true }) }),
    expected: { outcome: 'UPDATE_SUCCEEDED_BOOT_FIRMWARE', state: 'DONE' },
  },
  {
    name: 'staged apps-only update, committed after the engine restart',
    phase: 'staged',
    facts: facts(withPending(appsOnly), { booted: { commit: v1.commit }, defaultCommit: v1.commit }),
    expected: { outcome: 'UPDATE_SUCCEEDED', state: 'UPDATED' },
  },
  {
    name: 'staged, --no-wait: the apps are up, the window runs',
    phase: 'staged',
    facts: facts(withPending(PENDING.staged)),
    noWait: true,
    secondsLeft: 100,
    expected: { outcome: 'TESTING', state: 'TESTING' },
  },
  {
    name: 'staged, the engine cannot be reached',
    phase: 'staged',
    facts: facts(withPending(PENDING.staged)),
    engineDown: true,
    expected: { outcome: 'ENGINE_UNAVAILABLE', state: 'ERROR' },
  },
  {
    name: 'staged, the boot trial cannot be ended',
    phase: 'staged',
    facts: facts(withPending(PENDING.staged)),
    trialEndFails: true,
    expected: { outcome: 'DEVICE_STATE_UNREADABLE', state: 'ERROR' },
  },
  {
    name: 'staged, the new rootfs did not boot: the bootloader fell back',
    phase: 'staged',
    facts: facts(withPending(PENDING.staged), { booted: { commit: v1.commit } }),
    expected: { outcome: 'ROLLED_BACK', state: 'ERROR' },
  },
  {
    name: 'staged, the bootloader fell back, and the previous apps do not start',
    phase: 'staged',
    facts: facts(withPending(PENDING.staged), { booted: { commit: v1.commit } }),
    appsStart: failed,
    expected: { outcome: 'APPS_ROLLBACK_FAILED', state: 'ERROR' },
  },
  {
    name: 'staged, the apps fail on the new rootfs: the previous one is the default again',
    phase: 'staged',
    facts: facts(withPending(PENDING.staged)),
    appsStart: failed,
    expected: { outcome: 'APPS_FAILED_REBOOT_TO_ROLLBACK', state: 'ERROR' },
  },
  {
    name: 'staged, the apps fail, and making the previous rootfs the default fails',
    phase: 'staged',
    facts: facts(withPending(PENDING.staged)),
    appsWatch: failed,
    wayBack: { ok: false, reason: 'ostree admin deploy failed', cause: undefined },
    expected: { outcome: 'APPS_ROLLBACK_FAILED', state: 'ERROR' },
  },
  {
    name: 'staged apps-only update, the apps fail: the previous apps run again',
    phase: 'staged',
    facts: facts(withPending(appsOnly), { booted: { commit: v1.commit } }),
    appsWatch: failed,
    expected: { outcome: 'APPS_ROLLED_BACK', state: 'ERROR' },
  },
  {
    name: 'staged apps-only update, the apps fail and the previous apps do not start',
    phase: 'staged',
    facts: facts(withPending(appsOnly), { booted: { commit: v1.commit } }),
    appsWatch: failed,
    appsSwitch: failed,
    expected: { outcome: 'APPS_ROLLBACK_FAILED', state: 'ERROR' },
  },
  {
    name: 'staged, the apps fail and the previous target is unknown',
    phase: 'staged',
    facts: facts(withPending({ ...PENDING.staged, previous: unknown })),
    appsStart: failed,
    expected: { outcome: 'APPS_FAILED_NO_ROLLBACK', state: 'ERROR' },
  },
  {
    name: 'staged sync of the running target, its apps fail',
    phase: 'staged',
    facts: facts(withPending({ ...appsOnly, target: v1, previous: v1 }), { booted: { commit: v1.commit } }),
    appsStart: failed,
    expected: { outcome: 'APPS_FAILED_NO_ROLLBACK', state: 'ERROR' },
  },
  // ── testing ──
  {
    name: 'testing, the window passed: committed',
    phase: 'testing',
    facts: facts(withPending(PENDING.testing)),
    expected: { outcome: 'UPDATE_SUCCEEDED', state: 'DONE' },
  },
  {
    name: 'testing, --no-wait again while the window runs',
    phase: 'testing',
    facts: facts(withPending(PENDING.testing)),
    noWait: true,
    secondsLeft: 30,
    expected: { outcome: 'TESTING', state: 'TESTING' },
  },
  {
    name: 'testing, the apps stop during the window',
    phase: 'testing',
    facts: facts(withPending(PENDING.testing)),
    appsWatch: failed,
    expected: { outcome: 'APPS_FAILED_REBOOT_TO_ROLLBACK', state: 'ERROR' },
  },
  // ── returning ──
  {
    name: 'returning, not rebooted yet',
    phase: 'returning',
    facts: facts(withPending(PENDING.returning), { rebootSentinelPresent: true, booted: null }),
    expected: { outcome: 'REBOOT_NOT_DONE_YET', state: 'none' },
  },
  {
    name: 'returning, booted the previous target, its apps run again',
    phase: 'returning',
    facts: facts(withPending(PENDING.returning), { booted: { commit: v1.commit }, defaultCommit: v1.commit }),
    expected: { outcome: 'APPS_ROLLED_BACK', state: 'ERROR' },
  },
  {
    name: 'returning, booted the previous target, its apps do not start',
    phase: 'returning',
    facts: facts(withPending(PENDING.returning), { booted: { commit: v1.commit }, defaultCommit: v1.commit }),
    appsStart: failed,
    expected: { outcome: 'APPS_ROLLBACK_FAILED', state: 'ERROR' },
  },
  {
    name: 'returning, its apps in their window, --no-wait',
    phase: 'returning',
    facts: facts(withPending({ ...PENDING.returning, window }), { booted: { commit: v1.commit } }),
    noWait: true,
    secondsLeft: 10,
    expected: { outcome: 'TESTING', state: 'TESTING' },
  },
  {
    name: 'returning, booted on neither',
    phase: 'returning',
    facts: facts(withPending(PENDING.returning), { booted: { commit: '9'.repeat(64) } }),
    expected: { outcome: 'DEVICE_STATE_UNREADABLE', state: 'ERROR' },
  },
];

describe('run planner: every phase, every way run ends', () => {
  for (const row of rows) {
    test(`${row.phase ?? 'none'}: ${row.name} → ${row.expected.outcome} (${exitCodeOf(row.expected.outcome)})`, () =>
      assert.deepEqual(decide(row), row.expected));
  }

  test('the table covers every phase and every outcome run can decide', () => {
    const phases = new Set(rows.map((row) => row.phase));
    assert.deepEqual([...phases].sort(), [null, 'deploying', 'returning', 'staged', 'testing'].sort());
    const runOutcomes = plannerOutcomes();
    const covered = new Set(rows.map((row) => row.expected.outcome));
    assert.deepEqual([...covered].sort(), runOutcomes.sort());
    const codes = new Set(runOutcomes.map(exitCodeOf));
    for (const code of [0, 4, 5, 32, 33, 90, 99, 100, 105, 110, 120]) assert.ok(codes.has(code), `exit ${code}`);
  });

  test('a way back pending a reboot is written with the reboot marker first, in phase returning', () => {
    const end = rootfsReturnEnd(withPending(PENDING.staged), PENDING.staged, v1, ['web exited'], AT, { ok: true });
    assert.equal(end.rebootMarkerFirst, true);
    assert.equal(end.step, 'run.rollback-record');
    assert.deepEqual(end.record.kind === 'finish' && end.record.changes.pending, {
      phase: 'returning',
      target: v1,
      previous: v2,
      from: v2,
      installedAt: AT,
      completion: 'reboot',
      rootfsChanged: true,
      window: null,
    });
  });

  test('the end of a way back says why the target failed, as the run before the reboot recorded it', () => {
    const failed = [{ target: v2, at: AT, reason: 'apps failed: status goal not reached: 10-sensor: sensor offline' }];
    const end = commitEnd(PENDING.returning, false, null, failed);
    assert.equal(end.report.outcome, 'APPS_ROLLED_BACK');
    assert.equal(
      end.report.message,
      'rolled back to "os-1" after "os-2" failed (status goal not reached: 10-sensor: sensor offline); its apps run again',
    );
    assert.equal(
      commitEnd(PENDING.returning, false, null, []).report.message,
      'rolled back to "os-1" after "os-2" failed; its apps run again',
    );
  });

  test('a window begun in an earlier boot starts again; one of this boot is resumed', () => {
    assert.deepEqual(windowToResume(PENDING.testing, 'boot-1'), { window });
    const cut = windowToResume(PENDING.testing, 'boot-2');
    assert.equal(cut.window, null);
    assert.match(cut.note ?? '', /cut by a reboot/);
    assert.deepEqual(windowToResume({ ...PENDING.testing, window: { ...window, boot: null } }, 'boot-2').window, {
      ...window,
      boot: null,
    });
  });

  test('with no known version to go back to on a new rootfs, the boot trial ends before the record', () => {
    const way = planAppsFailed(running, { ...PENDING.staged, previous: unknown }, ['x'], AT);
    assert.equal(way.action === 'end' && way.endTrialFirst, true);
    const appsOnlyWay = planAppsFailed(running, { ...appsOnly, previous: unknown }, ['x'], AT);
    assert.equal(appsOnlyWay.action === 'end' && appsOnlyWay.endTrialFirst, false);
  });
});

describe('run.ts carries out steps; the planner decides', () => {
  test('no outcome of `run` is named in run.ts', () => {
    const source = readFileSync(new URL('../../../src/lifecycle/run.ts', import.meta.url), 'utf8');
    const named = plannerOutcomes().filter((outcome) => new RegExp(`\\b${outcome}\\b`).test(source));
    assert.deepEqual(named, []);
  });
});
