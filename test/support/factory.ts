import { spawnSync } from 'node:child_process';
import { promises as fs, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { exportBundle, type ExportOptions } from '../../src/bundle/workstation/export.js';
import { addTarget } from '../../src/repo/add-target.js';
import { initFactoryRepo, type FactoryRepo, type InitOptions } from '../../src/repo/factory-repo.js';
import type { MetadataFormat } from '../../src/repo/metadata-format.js';
import { commitSimRootfs } from '../../src/sim/rootfs.js';

export const HARDWARE_ID = 'ferry-sim';
export const OTHER_HARDWARE_ID = 'other-board';
export const TAG = 'main';

const temporaryDirs: string[] = [];
process.once('exit', () => {
  if (process.env['FERRY_KEEP_TEST_DIRS'] === '1') return;
  for (const dir of temporaryDirs) removeTree(dir);
});

/** ostree marks each deployment directory immutable (chattr +i), so it is cleared before removal. */
export function removeTree(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true });
  } catch {
    spawnSync('chattr', ['-R', '-i', dir], { stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A temporary directory, removed when the test process exits (kept with FERRY_KEEP_TEST_DIRS=1). */
export async function tempDir(prefix: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), `ferry-test-${prefix}-`));
  temporaryDirs.push(dir);
  return dir;
}

/** A minimal device configuration with its own empty storage and no key yet: what `device provision` needs on a fresh board. */
export async function freshDeviceConfig(): Promise<{ config: string; storage: string }> {
  const dir = await tempDir('fresh-device');
  const storage = path.join(dir, 'var', 'sota');
  const config = path.join(dir, 'sota.toml');
  await fs.writeFile(
    config,
    `[provision]\nprimary_ecu_hardware_id = "${HARDWARE_ID}"\n\n[storage]\npath = ${JSON.stringify(storage)}\n`,
  );
  return { config, storage };
}

export interface TestFactory {
  readonly dir: string;
  readonly repo: FactoryRepo;
  /** Target names. */
  readonly v1: string;
  readonly v2: string;
  /** Version 3, whose rootfs never boots in the simulator. */
  readonly v3BootFails: string;
  /** Version 4 for another board. */
  readonly otherBoard: string;
  readonly commits: Readonly<Record<string, string>>;
}

/** A factory repository with the targets most tests need, built from real OSTree commits. */
export async function buildFactory(
  options: { rootExpiresInDays?: number; signers?: InitOptions['signers']; metadataFormat?: MetadataFormat } = {},
): Promise<TestFactory> {
  const dir = await tempDir('factory');
  const build = path.join(dir, 'build');
  const repo = await initFactoryRepo(path.join(dir, 'repo'), {
    ...options,
    rootExpiresInDays: options.rootExpiresInDays ?? 365,
  });
  const commits: Record<string, string> = {};
  const add = async (version: string, hardwareId: string, bootFails = false, tags = [TAG]): Promise<string> => {
    await commitSimRootfs({ repo: build, branch: `test/v${version}`, version, bootFails });
    const result = await addTarget(repo, {
      name: 'sim-lmp',
      version,
      hardwareIds: [hardwareId],
      tags,
      ref: `test/v${version}`,
      ostreeRepo: build,
    });
    commits[result.name] = result.commit;
    return result.name;
  };
  const v1 = await add('1', HARDWARE_ID);
  const v2 = await add('2', HARDWARE_ID);
  const v3BootFails = await add('3', HARDWARE_ID, true);
  const otherBoard = await add('4', OTHER_HARDWARE_ID);
  return { dir, repo, v1, v2, v3BootFails, otherBoard, commits };
}

/** The last export each factory directory has started; the next one waits for it (see exportTo). */
const exportsUnderWay = new Map<string, Promise<unknown>>();

/**
 * Exports `targetName` from the factory into a new directory and returns the bundle's path. Exports from one factory
 * run one after the other, as a release engineer runs them: each records the metadata versions it signed in the
 * factory, and tests that run side by side must still get versions that only grow.
 */
export async function exportTo(
  factory: { readonly repo: FactoryRepo },
  targetName: string,
  options: Partial<Omit<ExportOptions, 'targetName'>> = {},
): Promise<string> {
  const destination = options.destination ?? path.join(await tempDir('bundle'), 'bundle');
  const previous = exportsUnderWay.get(factory.repo.dir) ?? Promise.resolve();
  const exported = previous
    .catch(() => undefined)
    .then(() =>
      exportBundle(factory.repo, { targetName, destination, tag: TAG, type: 'ci', expiresInDays: 30, ...options }),
    );
  exportsUnderWay.set(factory.repo.dir, exported);
  await exported;
  return destination;
}
