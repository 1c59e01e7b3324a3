import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ContainerState } from '../../src/apps/device/docker-engine.js';
import { appGoalState, goalOf } from '../../src/apps/device/status-goals.js';
import { defaultStatusGoal, parseCompose } from '../../src/apps/format/compose.js';
import { appsFromCustom, type AppPin } from '../../src/tuf/target.js';

/** The goal logic with no engine: what each app reached at one look, from the containers the engine reports. */

const SINCE = new Date('2026-11-30T10:00:00Z');
const web = { name: 'web', image: 'i', healthcheck: true };
const sidecar = { name: 'sidecar', image: 'i', healthcheck: false };

function container(service: string, state: Partial<ContainerState> = {}): ContainerState {
  return {
    id: `id-${service}`,
    name: `app_${service}_1`,
    service,
    image: 'i',
    running: true,
    restarting: false,
    exitCode: 0,
    status: 'running',
    startedAt: new Date(SINCE.getTime() - 1000),
    restartCount: 0,
    health: null,
    ...state,
  };
}

const pin = (statusGoal?: 'running' | 'healthy'): AppPin => ({
  uri: `hub/app@sha256:${'a'.repeat(64)}`,
  digest: `sha256:${'a'.repeat(64)}`,
  restartPolicy: 'container',
  ...(statusGoal === undefined ? {} : { statusGoal }),
});

describe('status goals', () => {
  test('healthy: every service with a healthcheck must report healthy; the others only run', () => {
    const state = appGoalState(
      'app',
      [web, sidecar],
      'healthy',
      [container('web', { health: 'healthy' }), container('sidecar')],
      SINCE,
    );
    assert.equal(state.reached, 'healthy');
    assert.deepEqual([state.failures, state.waiting], [[], []]);
  });

  test('healthy: a service still starting waits, naming the app and the service', () => {
    const state = appGoalState('app', [web], 'healthy', [container('web', { health: 'starting' })], SINCE);
    assert.equal(state.reached, 'starting');
    assert.deepEqual(state.failures, []);
    assert.deepEqual(state.waiting, ['status goal not reached: app "app" service "web" is still starting']);
    assert.deepEqual(state.culprit, { container: 'id-web', service: 'web' });
  });

  test('healthy: unhealthy fails at once', () => {
    const state = appGoalState('app', [web], 'healthy', [container('web', { health: 'unhealthy' })], SINCE);
    assert.equal(state.reached, 'unhealthy');
    assert.deepEqual(state.failures, ['status goal not reached: app "app" service "web" is unhealthy']);
  });

  test('running: the health is not looked at', () => {
    const state = appGoalState('app', [web], 'running', [container('web', { health: 'unhealthy' })], SINCE);
    assert.equal(state.reached, 'running');
  });

  test('either goal: an exited, restarted or missing container fails', () => {
    const exited = appGoalState(
      'app',
      [web],
      'healthy',
      [container('web', { running: false, status: 'exited', exitCode: 3 })],
      SINCE,
    );
    assert.equal(exited.reached, 'failed');
    assert.deepEqual(exited.failures, ['app "app": service "web" exited (exit code 3)']);
    const restarted = appGoalState(
      'app',
      [web],
      'running',
      [container('web', { startedAt: new Date(SINCE.getTime() + 5000) })],
      SINCE,
    );
    assert.match(restarted.failures[0]!, /restarted at/);
    assert.equal(
      appGoalState('app', [web], 'running', [], SINCE).failures[0],
      'app "app": service "web" has no container',
    );
  });

  test('the signed goal wins; without one the compose file decides', () => {
    assert.equal(goalOf(pin('running'), [web]), 'running');
    assert.equal(goalOf(pin(), [web, sidecar]), 'healthy');
    assert.equal(goalOf(pin(), [sidecar]), 'running');
  });

  test('a compose healthcheck counts only with a test of its own, not disabled', () => {
    const goal = (healthcheck: string) =>
      defaultStatusGoal(parseCompose(`services:\n  main:\n    image: i\n    healthcheck:\n${healthcheck}`).services);
    assert.equal(goal('      test: ["CMD", "test", "-f", "/tmp/ok"]\n      interval: 1s\n'), 'healthy');
    assert.equal(goal('      test: ["NONE"]\n'), 'running');
    assert.equal(goal('      test: ["CMD", "true"]\n      disable: true\n'), 'running');
    assert.equal(goal('      interval: 1s\n'), 'running');
  });

  test('the signed status_goal is read; absent stays absent; anything else is invalid', () => {
    const uri = `hub/app@sha256:${'a'.repeat(64)}`;
    const apps = appsFromCustom({ a: { uri, status_goal: 'healthy' }, b: { uri } });
    assert.ok(!('invalid' in apps));
    const read = apps as Record<string, AppPin>;
    assert.equal(read['a']!.statusGoal, 'healthy');
    assert.equal('statusGoal' in read['b']!, false);
    assert.deepEqual(appsFromCustom({ a: { uri, status_goal: 'ready' } }), {
      invalid: 'app "a": status_goal must be "running" or "healthy"',
    });
  });
});
