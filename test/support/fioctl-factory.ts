import { promises as fs } from 'node:fs';
import path from 'node:path';
import { addApp } from '../../src/apps/workstation/add-app.js';
import { buildImage, busyboxLayer } from '../../src/apps/workstation/build-image.js';
import { addTarget } from '../../src/repo/add-target.js';
import { initFactoryRepo, type FactoryRepo } from '../../src/repo/factory-repo.js';
import { commitSimRootfs } from '../../src/sim/rootfs.js';
import { compose } from './apps-factory.js';
import { HARDWARE_ID, OTHER_HARDWARE_ID, TAG, tempDir } from './factory.js';

/** A factory that signs in the Foundries format, with its targets and the one app they pin. */
export interface FioctlFactory {
  readonly repo: FactoryRepo;
  /** The rootfs build repository the targets were committed from. */
  readonly build: string;
  readonly targets: { readonly v1: string; readonly v2: string; readonly otherBoard: string };
  /** The manifest digest of the app `hello` every target pins. */
  readonly appDigest: string;
}

/**
 * `repo init --format fioctl`, two rootfs commits (rootfs/a for v1, rootfs/b for v2 and another board's target) and
 * one compose app, `hello` (a loop that runs until it is stopped), pinned by every target. No container engine is
 * needed to build it; a fioctl factory writes the app manifest in compose-publish's form.
 */
export async function buildFioctlFactory(): Promise<FioctlFactory> {
  const dir = await tempDir('fioctl-factory');
  const repo = await initFactoryRepo(path.join(dir, 'repo'), {
    rootExpiresInDays: 365,
    factory: 'test',
    metadataFormat: 'fioctl',
  });
  const build = path.join(dir, 'build');
  await commitSimRootfs({ repo: build, branch: 'rootfs/a', version: '1' });
  await commitSimRootfs({ repo: build, branch: 'rootfs/b', version: '2' });
  const imageDir = path.join(dir, 'image');
  await buildImage({
    ref: 'ferry.local/test/hello:1',
    outDir: imageDir,
    cmd: ['/bin/sh'],
    layers: [busyboxLayer(), [{ type: 'file', name: 'hello', content: 'hello\n' }]],
  });
  const composeDir = path.join(dir, 'compose');
  await fs.mkdir(composeDir);
  await fs.writeFile(
    path.join(composeDir, 'docker-compose.yml'),
    compose('ferry.local/test/hello:1', 'trap "exit 0" TERM; while true; do sleep 1; done'),
  );
  const appDigest = (await addApp(repo, { name: 'hello', composeDir, images: [imageDir] })).digest;
  const targets = { v1: '', v2: '', otherBoard: '' };
  for (const [key, version, ref, hardwareId] of [
    ['v1', '1', 'rootfs/a', HARDWARE_ID],
    ['v2', '2', 'rootfs/b', HARDWARE_ID],
    ['otherBoard', '3', 'rootfs/b', OTHER_HARDWARE_ID],
  ] as const) {
    targets[key] = (
      await addTarget(repo, {
        name: 'fio-lmp',
        version,
        hardwareIds: [hardwareId],
        tags: [TAG],
        ref,
        ostreeRepo: build,
        apps: [{ name: 'hello', digest: appDigest }],
      })
    ).name;
  }
  return { repo, build, targets, appDigest };
}
