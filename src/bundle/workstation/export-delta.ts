import { promises as fs } from 'node:fs';
import path from 'node:path';
import { verifyApps } from '../../apps/format/verify-apps.js';
import { OstreeRepo } from '../../ostree/ostree-repo.js';
import type { FactoryRepo } from '../../repo/factory-repo.js';
import { appsOfTarget } from './export-apps.js';
import type { FactoryTarget } from './export-plan.js';

/**
 * A delta bundle carries only what its target adds to a base the device already holds: the OSTree objects the base
 * commit does not reach, and the app layers the base's apps lack.
 */

/** The base's objects, pulled into `scratch` beside the factory repo (hard links, not copies); returns its repo. */
export async function pullBase(repo: FactoryRepo, scratch: string, baseCommit: string): Promise<OstreeRepo> {
  const baseRepo = await OstreeRepo.create(path.join(scratch, 'repo'), 'archive');
  // Scratch, removed after the export: nothing to make durable.
  await baseRepo.pullLocal(repo.ostree.path, baseCommit, { untrusted: false, disableFsync: true });
  return baseRepo;
}

/**
 * Removes from `objectsDir` every object `baseObjectsDir` holds: what a device at the base already has. The target's
 * own commit object stays, even when the base shares it (an apps-only change): a stick names what it carries.
 */
export async function removeObjectsOf(baseObjectsDir: string, objectsDir: string, keepCommit: string): Promise<void> {
  for (const prefix of await fs.readdir(baseObjectsDir)) {
    for (const name of await fs.readdir(path.join(baseObjectsDir, prefix))) {
      if (`${prefix}${name}`.startsWith(`${keepCommit}.commit`)) continue;
      await fs.rm(path.join(objectsDir, prefix, name), { force: true });
    }
  }
}

/**
 * The layers the base's apps hold, which the delta leaves out. Manifests and configs always travel (they are small and
 * the digest chain starts from them), so only layers count.
 */
export async function baseLayers(repo: FactoryRepo, baseName: string, base: FactoryTarget): Promise<Set<string>> {
  const layers = new Set<string>();
  for (const app of await verifyApps(repo.apps, appsOfTarget(baseName, base)))
    for (const image of app.images) for (const layer of image.blobs.slice(2)) layers.add(layer.digest);
  return layers;
}
