import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { FactoryRepo } from '../../repo/factory-repo.js';
import { processAlive } from '../../util/process-alive.js';

/**
 * A scratch directory beside the factory repo (on its filesystem, where ostree hard-links instead of copying), named
 * after this process. What an export killed half-way left there goes first. The caller removes it.
 */
export async function scratchDir(repo: FactoryRepo, kind: 'tree' | 'base' | 'rootfs'): Promise<string> {
  for (const name of await fs.readdir(repo.dir)) {
    const owner = /^\.export-(?:tree|base|rootfs)-(\d+)-/.exec(name)?.[1];
    if (owner !== undefined && !processAlive(Number(owner)))
      await fs.rm(path.join(repo.dir, name), { recursive: true, force: true });
  }
  return fs.mkdtemp(path.join(repo.dir, `.export-${kind}-${process.pid}-`));
}
