import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describeCause } from '../../errors.js';
import type { AppPin } from '../../tuf/target.js';
import type { AppStore } from './app-store.js';
import { parseCompose, pinnedImages, RENDERED_COMPOSE_FILE } from '../format/compose.js';
import type { ContainerEnginePort } from '../../device/device.js';
import { localTagOf } from '../format/image-ref.js';

type Apps = Readonly<Record<string, AppPin>>;

export interface AppsResult {
  readonly ok: boolean;
  /** One line per app that failed, naming the service and what happened. */
  readonly failures: readonly string[];
}

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

/**
 * One look at the apps: every service of every app has a container that is running, is not restarting, and has
 * been running since `since`. A container that exited, restarted, or never started is a failure of its app.
 */
export async function checkApps(
  engine: ContainerEnginePort,
  store: AppStore,
  apps: Apps,
  since: Date,
): Promise<AppsResult> {
  const failures: string[] = [];
  for (const [name, pin] of Object.entries(apps)) {
    let services: string[];
    try {
      services = parseCompose(await fs.readFile(composeFileOf(store, name, pin), 'utf8')).services.map(
        (service) => service.name,
      );
    } catch (error) {
      failures.push(`app "${name}" is not in the app store: ${describeCause(error)}`);
      continue;
    }
    const containers = await engine.containers(name);
    for (const service of services) {
      const mine = containers.filter((container) => container.service === service);
      if (mine.length === 0) failures.push(`app "${name}": service "${service}" has no container`);
      for (const container of mine) {
        if (!container.running || container.restarting) {
          failures.push(`app "${name}": service "${service}" ${container.status} (exit code ${container.exitCode})`);
        } else if (container.startedAt.getTime() > since.getTime()) {
          failures.push(`app "${name}": service "${service}" restarted at ${container.startedAt.toISOString()}`);
        }
      }
    }
  }
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

/**
 * The testing window: the apps are looked at about every second until `until`; the first failure ends it. With
 * `until` already past, they are looked at once.
 */
export async function watchApps(
  engine: ContainerEnginePort,
  store: AppStore,
  apps: Apps,
  window: { since: Date; until: Date; onTick?: (secondsLeft: number) => Promise<void> },
): Promise<AppsResult> {
  for (;;) {
    const result = await checkApps(engine, store, apps, window.since);
    const left = window.until.getTime() - Date.now();
    if (!result.ok || left <= 0) return result;
    await window.onTick?.(Math.ceil(left / 1000));
    await new Promise((resolve) => setTimeout(resolve, Math.min(1000, left)));
  }
}

/** Starts `to` (stopping what only `from` has) and watches it for `windowMs`. */
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
  return watchApps(engine, store, to, { since, until: new Date(since.getTime() + windowMs) });
}

export async function stopApp(engine: ContainerEnginePort, store: AppStore, name: string, pin: AppPin): Promise<void> {
  try {
    await engine.down(name, composeFileOf(store, name, pin));
  } catch {
    // Its compose file may be gone: remove its containers by their project label instead.
    await engine.removeProjectContainers(name);
  }
}
