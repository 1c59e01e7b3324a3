import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { rebuildStatus } from '../../src/lifecycle/rebuild-status.js';
import type { Target } from '../../src/tuf/target.js';

const commit = (n: number) => n.toString(16).padStart(64, '0');
const target = (version: string, n: number): Target => ({
  name: `os-${version}`,
  version,
  commit: commit(n),
  hardwareIds: ['b'],
  tags: ['main'],
  apps: {},
});
const known = [target('1', 1), target('2', 2)];
const deployment = (n: number, index: number) => ({ index, os: 'lmp', commit: commit(n), serial: 0 });
const device = { hardwareId: 'b', tags: ['main'] };
const flags = (upgradeAvailable: boolean) => ({ upgradeAvailable, bootcount: 0, bootUpgradeAvailable: false });

describe('rebuilding an unreadable status record from the device', () => {
  test('no boot trial: DONE on the booted target', () => {
    const status = rebuildStatus({
      bootedCommit: commit(1),
      deployments: [deployment(1, 0)],
      flags: flags(false),
      rebootPending: false,
      known,
      device,
      recovered: 'x',
    });
    assert.equal(status.state, 'DONE');
    assert.equal(status.current?.name, 'os-1');
    assert.equal(status.pending, null);
  });

  test('a trial waiting for its reboot: pending the new default, from the booted one', () => {
    const status = rebuildStatus({
      bootedCommit: commit(1),
      deployments: [deployment(2, 0), deployment(1, 1)],
      flags: flags(true),
      rebootPending: true,
      known,
      device,
      recovered: 'x',
    });
    assert.equal(status.state, 'INPROGRESS');
    assert.equal(status.pending?.target.name, 'os-2');
    assert.equal(status.pending?.previous?.name, 'os-1');
  });

  test('rebooted into the trial: pending the booted one, the rollback deployment as previous', () => {
    const status = rebuildStatus({
      bootedCommit: commit(2),
      deployments: [deployment(2, 0), deployment(1, 1)],
      flags: flags(true),
      rebootPending: false,
      known,
      device,
      recovered: 'x',
    });
    assert.equal(status.pending?.target.name, 'os-2');
    assert.equal(status.pending?.previous?.name, 'os-1');
  });

  test('a target for another hardware id or tag with the booted commit is never picked', () => {
    const elsewhere = [
      { ...target('7', 1), hardwareIds: ['other-board'] },
      { ...target('8', 1), tags: ['devel'] },
      { ...target('9', 2), hardwareIds: ['other-board'] },
    ];
    const idle = rebuildStatus({
      bootedCommit: commit(1),
      deployments: [deployment(1, 0)],
      flags: flags(false),
      rebootPending: false,
      known: [...known, ...elsewhere],
      device,
      recovered: 'x',
    });
    assert.equal(idle.current?.name, 'os-1');
    const trial = rebuildStatus({
      bootedCommit: commit(1),
      deployments: [deployment(2, 0), deployment(1, 1)],
      flags: flags(true),
      rebootPending: true,
      known: [target('1', 1), ...elsewhere],
      device,
      recovered: 'x',
    });
    assert.equal(trial.pending, null, "the trial commit names only another board's target");
    assert.equal(trial.current?.name, 'os-1');
  });

  test('a trial of a commit no trusted target names: not guessed', () => {
    const status = rebuildStatus({
      bootedCommit: commit(1),
      deployments: [deployment(9, 0), deployment(1, 1)],
      flags: flags(true),
      rebootPending: true,
      known,
      device,
      recovered: 'x',
    });
    assert.equal(status.pending, null);
    assert.equal(status.current?.name, 'os-1');
  });
});
