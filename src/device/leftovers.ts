import { promises as fs } from 'node:fs';
import path from 'node:path';
import { removeTree } from '../util/remove-tree.js';
import type { DevicePaths } from './paths.js';

/**
 * What a killed command leaves behind: staging directories (apps, unpacked archive bundles, a static delta copied
 * off the stick), the app store's trash, and the temp files of atomic writes. All of it is ferry's own scratch, never
 * a record: with the device lock held, no other ferry process can be using it.
 */
const SCRATCH = /^\.(apps-staging-|bundle-|trash-)|^\..+\.\d+\.[0-9a-f]{8}\.tmp$/;
/** The pid a scratch name carries, if it carries one. */
const OWNER = /^\.(?:apps-staging|bundle)-(\d+)-|\.(\d+)\.[0-9a-f]{8}\.tmp$/;

function ownedByThisProcess(name: string): boolean {
  const match = OWNER.exec(name);
  return match !== null && Number(match[1] ?? match[2]) === process.pid;
}

export async function removeLeftovers(paths: DevicePaths): Promise<string[]> {
  const dirs = [
    path.dirname(paths.statusFile),
    paths.appStore,
    paths.trustedMetadataDir,
    paths.foundriesTrustDir,
    path.dirname(paths.updateStateFile),
  ];
  const removed: string[] = [];
  for (const dir of new Set(dirs)) {
    let names: string[];
    try {
      names = await fs.readdir(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      // This command's own scratch (an archive bundle it unpacked) is in use.
      if (!SCRATCH.test(name) || ownedByThisProcess(name)) continue;
      await removeTree(path.join(dir, name));
      removed.push(path.join(dir, name));
    }
  }
  return removed;
}
