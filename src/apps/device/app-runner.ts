import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describeCause } from '../../errors.js';
import type { AppPin, StatusGoal } from '../../tuf/target.js';
import { appGoalState, goalOf, type AppGoalState, type GoalReached } from './status-goals.js';
import type { AppStore } from './app-store.js';
import { parseCompose, pinnedImages, RENDERED_COMPOSE_FILE } from '../format/compose.js';
import type { ContainerEnginePort } from '../../device/device.js';
import { localTagOf } from '../format/image-ref.js';

type Apps = Readonly<Record<string, AppPin>>;

export interface AppsResult {
  readonly ok: boolean;
  /** One line per app that failed, naming the service and what happened. */
  readonly failures: readonly string[];
  /** Lines for the log snippet that explain the failure: the last lines of the failing container's log. */
  readonly detail?: readonly string[];
}

/** Each app's goal and what it reached at the last look, for `status` and the progress events. */
export type GoalsReport = Readonly<Record<string, { readonly goal: StatusGoal; readonly reached: GoalReached }>>;

/** How many of the failing container's last log lines the log snippet keeps. */
export const CONTAINER_LOG_LINES = 10;

function composeFileOf(store: AppStore, name: string, pin: AppPin): string {
  return path.join(store.apps.projectDir(name, pin.digest), RENDERED_COMPOSE_FILE);
}

/**
 * Loads the app's images into the engine unless they are there already, under their digest-derived tags. The images
 * are those the stored compose file pins by digest: every form of app manifest agrees with it (verifyApps checked).
 */
async function loadImages(engine: ContainerEnginePort, store: AppStore, name: string, pin: AppPin): Promise<void> {
  const compose = parseCompose(await fs.readFile(store.apps.composeFile(name, pin.digest), 'utf8'));
  const seen = new Set<string>();
  for (const ref of pinnedImages(compose)) {
    if (seen.has(ref.digest)) continue;
    seen.add(ref.digest);
    const tag = localTagOf(ref);
    if (await engine.hasImage(tag)) continue;
    await engine.loadImage(store.apps.imageDir(name, pin.digest, ref), store.apps.blobs.dir, tag);
  }
}

/** Brings the apps of `to` up (loading their images first) and the apps only `from` has down. */
export async function startApps(
  engine: ContainerEnginePort,
  store: AppStore,
  from: Apps,
  to: Apps,
): Promise<AppsResult> {
  const failures: string[] = [];
  for (const [name, pin] of Object.entries(from)) {
    if (to[name] === undefined) await stopApp(engine, store, name, pin);
  }
  for (const [name, pin] of Object.entries(to)) {
    try {
      await loadImages(engine, store, name, pin);
      await engine.up(name, composeFileOf(store, name, pin));
    } catch (error) {
      failures.push(`app "${name}" did not start: ${describeCause(error)}`);
    }
  }
  return { ok: failures.length === 0, failures };
}

/** Each app at one look: its goal and what it reached, or why it cannot be looked at. */
async function lookAtApps(
  engine: ContainerEnginePort,
  store: AppStore,
  apps: Apps,
  since: Date,
  goals: 'signed' | 'running',
): Promise<{ states: Record<string, AppGoalState>; unreadable: string[] }> {
  const states: Record<string, AppGoalState> = {};
  const unreadable: string[] = [];
  for (const [name, pin] of Object.entries(apps)) {
    let services;
    try {
      services = parseCompose(await fs.readFile(composeFileOf(store, name, pin), 'utf8')).services;
    } catch (error) {
      unreadable.push(`app "${name}" is not in the app store: ${describeCause(error)}`);
      continue;
    }
    const goal = goals === 'running' ? 'running' : goalOf(pin, services);
    states[name] = appGoalState(name, services, goal, await engine.containers(name), since);
  }
  return { states, unreadable };
}

/** The last lines of the log of the container that explains an app's failure, for the log snippet. */
async function logDetail(
  engine: ContainerEnginePort,
  name: string,
  state: AppGoalState | undefined,
): Promise<string[]> {
  if (state?.culprit == null) return [];
  const lines = await engine.logTail(state.culprit.container, CONTAINER_LOG_LINES).catch(() => []);
  if (lines.length === 0) return [`app "${name}" service "${state.culprit.service}" wrote no log`];
  return [
    `app "${name}" service "${state.culprit.service}", the last lines of its log:`,
    ...lines.map((line) => `  | ${line}`),
  ];
}

/**
 * One look at the apps: every service of every app has a container that is running, is not restarting, and has
 * been running since `since`. A container that exited, restarted, or never started is a failure of its app. The
 * status goals are not waited for here: this is the rule for apps that ran before (a restore, a rollback).
 */
export async function checkApps(
  engine: ContainerEnginePort,
  store: AppStore,
  apps: Apps,
  since: Date,
): Promise<AppsResult> {
  const { states, unreadable } = await lookAtApps(engine, store, apps, since, 'running');
  const failures = [...unreadable, ...Object.values(states).flatMap((state) => state.failures)];
  return { ok: failures.length === 0, failures };
}

/**
 * Why the apps of the target a device runs are not in sync, one line each: an app the store lacks, an engine that
 * cannot be reached, a service without a running container. Empty when every app is in the store and running.
 */
export async function appsOutOfSync(engine: ContainerEnginePort, store: AppStore, apps: Apps): Promise<string[]> {
  const reasons: string[] = [];
  const stored: Record<string, AppPin> = {};
  for (const [name, pin] of Object.entries(apps)) {
    if (await store.hasApp(name, pin)) stored[name] = pin;
    else reasons.push(`app "${name}" is not in the app store`);
  }
  if (Object.keys(stored).length === 0) return reasons;
  try {
    await engine.ensureReachable();
  } catch (error) {
    return [...reasons, describeCause(error)];
  }
  // Started before now, so a container that merely runs is never counted as restarted.
  return [...reasons, ...(await checkApps(engine, store, stored, new Date())).failures];
}

export interface WatchWindow {
  readonly since: Date;
  readonly until: Date;
  readonly onTick?: (secondsLeft: number, goals: GoalsReport) => Promise<void>;
  /**
   * Called once, the first time every app reached its goal while the window still runs (the device's health checks
   * run here): a failure ends the window.
   */
  readonly onGoalsReached?: () => Promise<AppsResult>;
  /** Called after every look: what each app reached. */
  readonly onGoals?: (goals: GoalsReport) => void;
}

/**
 * The testing window: the apps are looked at about every second until `until`; the first failure ends it. With
 * `until` already past, they are looked at once. With `goals` "signed", each app must reach its status goal before
 * the window ends (an app still `starting` then fails it); "running" asks only that the containers run, for apps
 * that ran before.
 */
export async function watchApps(
  engine: ContainerEnginePort,
  store: AppStore,
  apps: Apps,
  window: WatchWindow,
  goals: 'signed' | 'running' = 'signed',
): Promise<AppsResult> {
  let reachedReported = false;
  for (;;) {
    const { states, unreadable } = await lookAtApps(engine, store, apps, window.since, goals);
    const report: GoalsReport = Object.fromEntries(
      Object.entries(states).map(([name, state]) => [name, { goal: state.goal, reached: state.reached }]),
    );
    window.onGoals?.(report);
    const left = window.until.getTime() - Date.now();
    const failed = Object.entries(states).find(([, state]) => state.failures.length > 0);
    const failures = [...unreadable, ...Object.values(states).flatMap((state) => state.failures)];
    if (failures.length > 0) {
      return { ok: false, failures, detail: await logDetail(engine, failed?.[0] ?? '', failed?.[1]) };
    }
    const waiting = Object.entries(states).find(([, state]) => state.waiting.length > 0);
    if (waiting === undefined && !reachedReported) {
      reachedReported = true;
      if (left > 0 && window.onGoalsReached !== undefined) {
        const checked = await window.onGoalsReached();
        if (!checked.ok) return checked;
      }
    }
    if (left <= 0) {
      if (waiting === undefined) return { ok: true, failures: [] };
      return {
        ok: false,
        failures: Object.values(states).flatMap((state) => state.waiting),
        detail: await logDetail(engine, waiting[0], waiting[1]),
      };
    }
    await window.onTick?.(Math.ceil(left / 1000), report);
    await new Promise((resolve) => setTimeout(resolve, Math.min(1000, left)));
  }
}

/**
 * Starts `to` (stopping what only `from` has) and watches it for `windowMs`. These are apps that ran before (a
 * rollback, a restore): their containers must run; their status goals are not waited for.
 */
export async function switchApps(
  engine: ContainerEnginePort,
  store: AppStore,
  from: Apps,
  to: Apps,
  windowMs: number,
): Promise<AppsResult> {
  const started = await startApps(engine, store, from, to);
  if (!started.ok) return started;
  const since = new Date();
  return watchApps(engine, store, to, { since, until: new Date(since.getTime() + windowMs) }, 'running');
}

export async function stopApp(engine: ContainerEnginePort, store: AppStore, name: string, pin: AppPin): Promise<void> {
  try {
    await engine.down(name, composeFileOf(store, name, pin));
  } catch {
    // Its compose file may be gone: remove its containers by their project label instead.
    await engine.removeProjectContainers(name);
  }
}
