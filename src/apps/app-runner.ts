import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describeCause } from '../errors.js';
import type { AppPin } from '../tuf/target.js';
import { parseAppManifest } from './app-manifest.js';
import type { AppStore } from './app-store.js';
import { parseCompose, RENDERED_COMPOSE_FILE } from './compose.js';
import type { DockerEngine } from './docker-engine.js';
import { localTagOf, parseImageRef } from './image-ref.js';

type Apps = Readonly<Record<string, AppPin>>;

export interface AppsResult {
  readonly ok: boolean;
  /** One line per app that failed, naming the service and what happened. */
  readonly failures: readonly string[];
}

function composeFileOf(store: AppStore, name: string, pin: AppPin): string {
  return path.join(store.apps.projectDir(name, pin.digest), RENDERED_COMPOSE_FILE);
}

/** Loads the app's images into the engine unless they are there already, under their digest-derived tags. */
async function loadImages(engine: DockerEngine, store: AppStore, name: string, pin: AppPin): Promise<void> {
  const manifest = parseAppManifest(
    JSON.parse(await fs.readFile(store.apps.manifestFile(name, pin.digest), 'utf8')),
    name,
  );
  for (const image of manifest.images) {
    const ref = parseImageRef(image.ref);
    if (ref?.digest === undefined) throw new Error(`image ${image.ref} is not pinned`);
    const tag = localTagOf({ ...ref, digest: ref.digest });
    if (await engine.hasImage(tag)) continue;
    await engine.loadImage(
      store.apps.imageDir(name, pin.digest, { ...ref, digest: ref.digest }),
      store.apps.blobs.dir,
      tag,
    );
  }
}

/**
 * Brings the apps of `to` up and the apps only `from` has down, then waits `settleMs` and checks that every
 * service of every app of `to` has a running container that is not restarting. A container that exited, or never
 * started, is a failure of its app.
 */
export async function switchApps(
  engine: DockerEngine,
  store: AppStore,
  from: Apps,
  to: Apps,
  settleMs: number,
): Promise<AppsResult> {
  const failures: string[] = [];
  for (const [name, pin] of Object.entries(from)) {
    if (to[name] !== undefined) continue;
    await stopApp(engine, store, name, pin);
  }
  const started: string[] = [];
  for (const [name, pin] of Object.entries(to)) {
    try {
      await loadImages(engine, store, name, pin);
      await engine.up(name, composeFileOf(store, name, pin));
      started.push(name);
    } catch (error) {
      failures.push(`app "${name}" did not start: ${describeCause(error)}`);
    }
  }
  if (started.length > 0 && settleMs > 0) await new Promise((resolve) => setTimeout(resolve, settleMs));
  for (const name of started) {
    const pin = to[name]!;
    const services = parseCompose(await fs.readFile(composeFileOf(store, name, pin), 'utf8')).services.map(
      (service) => service.name,
    );
    const containers = await engine.containers(name);
    for (const service of services) {
      const running = containers.filter((container) => container.service === service);
      if (running.length === 0) failures.push(`app "${name}": service "${service}" has no container`);
      for (const container of running) {
        if (!container.running || container.restarting) {
          failures.push(`app "${name}": service "${service}" is ${container.status} (exit code ${container.exitCode})`);
        }
      }
    }
  }
  return { ok: failures.length === 0, failures };
}

export async function stopApp(engine: DockerEngine, store: AppStore, name: string, pin: AppPin): Promise<void> {
  try {
    await engine.down(name, composeFileOf(store, name, pin));
  } catch {
    // Its compose file may be gone: remove its containers by their project label instead.
    await engine.removeProjectContainers(name);
  }
}
