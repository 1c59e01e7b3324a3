import { promises as fs } from 'node:fs';
import path from 'node:path';
import { OstreeRepo } from '../../../src/ostree/ostree-repo.js';
import { addTarget } from '../../../src/repo/add-target.js';
import { initFactoryRepo, type FactoryRepo } from '../../../src/repo/factory-repo.js';
import { buildRootfsTree, VM_HARDWARE_ID, VM_TAG, type RootfsOptions } from './rootfs.js';

/** The bare name of the test machine's targets: version N is target `ferry-vm-N`. */
export const VM_TARGET_NAME = 'ferry-vm';

/** The three targets of the real-boot factory: v1 is on the disks, v2 updates it, v3's init dies. */
export interface VmTargets {
  readonly v1: string;
  readonly v2: string;
  readonly v3InitDies: string;
}

export interface VmFactory {
  readonly repo: FactoryRepo;
  readonly targets: VmTargets;
  /** Commit checksum per target name. */
  readonly commits: Readonly<Record<string, string>>;
}

/**
 * A ferry factory repository (as `ferry init` and `ferry target add` make it) whose targets' commits are the VM's
 * rootfs trees, built in `dir`: `dir/repo` is the factory, `dir/build` the OSTree repo the trees are committed to.
 */
export async function buildVmFactory(
  dir: string,
  rootfs: Omit<RootfsOptions, 'version' | 'initDies'>,
): Promise<VmFactory> {
  const build = await OstreeRepo.create(path.join(dir, 'build'), 'archive');
  const repo = await initFactoryRepo(path.join(dir, 'repo'), { rootExpiresInDays: 3650 });
  const commits: Record<string, string> = {};
  const add = async (version: string, initDies: boolean): Promise<string> => {
    const tree = path.join(dir, `rootfs-v${version}`);
    await buildRootfsTree(tree, { ...rootfs, version: `v${version}`, initDies });
    const branch = `${VM_TARGET_NAME}/v${version}`;
    await build.commitTree({ tree, branch, subject: `ferry test machine v${version}` });
    await fs.rm(tree, { recursive: true, force: true });
    const added = await addTarget(repo, {
      name: VM_TARGET_NAME,
      version,
      hardwareIds: [VM_HARDWARE_ID],
      tags: [VM_TAG],
      ref: branch,
      ostreeRepo: build.path,
    });
    commits[added.name] = added.commit;
    return added.name;
  };
  const targets: VmTargets = { v1: await add('1', false), v2: await add('2', false), v3InitDies: await add('3', true) };
  await fs.rm(build.path, { recursive: true, force: true });
  return { repo, targets, commits };
}
