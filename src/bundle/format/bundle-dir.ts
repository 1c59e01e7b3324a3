import { promises as fs } from 'node:fs';
import path from 'node:path';
import { FerryError, describeCause } from '../../errors.js';
import { OstreeRepo } from '../../ostree/ostree-repo.js';
import type { StaticDeltaRootfs } from '../../tuf/bundle-targets.js';
import { staticDeltaPresent } from './static-delta.js';

/** The three parts of a bundle on the media (reference §1). */
export interface BundleDir {
  readonly root: string;
  readonly tufDir: string;
  readonly ostreeRepo: OstreeRepo;
  readonly appsDir: string;
}

export function bundleLayout(root: string): BundleDir {
  return {
    root,
    tufDir: path.join(root, 'tuf'),
    ostreeRepo: new OstreeRepo(path.join(root, 'ostree_repo')),
    appsDir: path.join(root, 'apps'),
  };
}

export async function openBundleDir(root: string): Promise<BundleDir> {
  let stat;
  try {
    stat = await fs.stat(root);
  } catch (error) {
    throw new FerryError('BUNDLE_UNREADABLE', `cannot open the bundle ${root}: ${describeCause(error)}`, {
      cause: error,
    });
  }
  if (!stat.isDirectory()) throw new FerryError('BUNDLE_UNREADABLE', `${root} is not a bundle directory`);
  const layout = bundleLayout(root);
  try {
    await fs.access(layout.tufDir);
  } catch {
    throw new FerryError('BUNDLE_UNREADABLE', `${root} is not a bundle: it has no tuf/ directory`);
  }
  return layout;
}

/**
 * Which of the given commits the bundle carries: their commit object in its ostree_repo/, or, when the signed
 * metadata says the rootfs is a static delta, that delta's file.
 */
export async function commitsPresent(
  bundle: BundleDir,
  commits: readonly string[],
  rootfs?: StaticDeltaRootfs | undefined,
): Promise<Set<string>> {
  const present = new Set<string>();
  for (const commit of commits) {
    const there =
      rootfs === undefined
        ? await bundle.ostreeRepo.hasCommitObject(commit)
        : await staticDeltaPresent(bundle, rootfs, commit);
    if (there) present.add(commit);
  }
  return present;
}

/** The versions of the N.root.json files in a bundle's tuf/, oldest first; refused if there is none. */
export async function rootVersionsOf(tufDir: string): Promise<number[]> {
  const versions = (await fs.readdir(tufDir))
    .filter((name) => /^\d+\.root\.json$/.test(name))
    .map((name) => Number.parseInt(name, 10))
    .sort((a, b) => a - b);
  if (versions.length === 0) throw new FerryError('METADATA_NOT_FOUND', 'tuf/ holds no N.root.json');
  return versions;
}
