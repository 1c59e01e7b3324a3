import type { ComposeService } from '../format/compose.js';
import { defaultStatusGoal } from '../format/compose.js';
import type { AppPin, StatusGoal } from '../../tuf/target.js';
import type { ContainerState } from './docker-engine.js';

/**
 * Status goals (Pantavisor's): what an app must reach before its update commits, and what it has reached at one look
 * at the engine. Pure: the engine's facts come in, a verdict per app goes out.
 */

/** What an app reached: its goal (running, healthy), still on its way (starting), or not (unhealthy, failed). */
export type GoalReached = 'running' | 'healthy' | 'starting' | 'unhealthy' | 'failed';

export interface AppGoalState {
  readonly goal: StatusGoal;
  readonly reached: GoalReached;
  /** One line per service that failed: the update fails at once. */
  readonly failures: readonly string[];
  /** One line per service still on its way to the goal: the update fails only if the window ends so. */
  readonly waiting: readonly string[];
  /** The container whose log explains the first failure (or the first wait), for the log snippet. */
  readonly culprit: { readonly container: string; readonly service: string } | null;
}

/** The goal the target signs for the app, else the one its compose file implies. */
export function goalOf(pin: AppPin, services: readonly ComposeService[]): StatusGoal {
  return pin.statusGoal ?? defaultStatusGoal(services);
}

/**
 * One look at one app: every service must have a container that runs, is not restarting and has run since `since`;
 * with the goal healthy, every service whose compose file has a healthcheck must also report healthy. `unhealthy`
 * fails at once; `starting` (or no health reported yet) waits.
 */
export function appGoalState(
  name: string,
  services: readonly ComposeService[],
  goal: StatusGoal,
  containers: readonly ContainerState[],
  since: Date,
): AppGoalState {
  const failures: string[] = [];
  const waiting: string[] = [];
  let culprit: AppGoalState['culprit'] = null;
  let waitingOn: AppGoalState['culprit'] = null;
  let unhealthy = false;
  for (const service of services) {
    const mine = containers.filter((container) => container.service === service.name);
    if (mine.length === 0) failures.push(`app "${name}": service "${service.name}" has no container`);
    for (const container of mine) {
      if (!container.running || container.restarting) {
        failures.push(`app "${name}": service "${service.name}" ${container.status} (exit code ${container.exitCode})`);
      } else if (container.startedAt.getTime() > since.getTime()) {
        failures.push(`app "${name}": service "${service.name}" restarted at ${container.startedAt.toISOString()}`);
      } else if (goal === 'healthy' && service.healthcheck && container.health === 'unhealthy') {
        unhealthy = true;
        failures.push(`status goal not reached: app "${name}" service "${service.name}" is unhealthy`);
      } else if (goal === 'healthy' && service.healthcheck && container.health !== 'healthy') {
        waiting.push(
          container.health === 'starting'
            ? `status goal not reached: app "${name}" service "${service.name}" is still starting`
            : `status goal not reached: app "${name}" service "${service.name}" reports no health`,
        );
        waitingOn ??= { container: container.id, service: service.name };
        continue;
      } else {
        continue;
      }
      culprit ??= { container: container.id, service: service.name };
    }
  }
  const reached: GoalReached =
    failures.length > 0 ? (unhealthy ? 'unhealthy' : 'failed') : waiting.length > 0 ? 'starting' : goal;
  return { goal, reached, failures, waiting, culprit: culprit ?? waitingOn };
}
