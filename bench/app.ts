import { promises as fs } from 'node:fs';
import path from 'node:path';
import { addApp } from '../src/apps/workstation/add-app.js';
import { buildImage, busyboxLayer } from '../src/apps/workstation/build-image.js';
import type { FactoryRepo } from '../src/repo/factory-repo.js';
import type { TarMember } from '../src/util/tar-pack.js';
import { deterministicBytes } from './data.js';

const MiB = 1048576;

/**
 * The benches' app, added to `repo` as `bench`: one image of busybox and four layers of binaries that make up
 * `appsMiB`, built in `work`. Returns the app's name.
 */
export async function benchApp(work: string, repo: FactoryRepo, appsMiB: number): Promise<string> {
  const layers: TarMember[][] = [busyboxLayer()];
  const files = path.join(work, 'app-files');
  await fs.mkdir(files);
  const perLayer = Math.floor((appsMiB * MiB) / 4);
  for (let layer = 0; layer < 4; layer++) {
    const members: TarMember[] = [{ type: 'directory', name: `opt/layer${layer}` }];
    for (let i = 0; i < 16; i++) {
      const file = path.join(files, `l${layer}-${i}`);
      await fs.writeFile(file, deterministicBytes(`app ${layer}/${i}`, Math.floor(perLayer / 16)));
      members.push({ type: 'file-from', name: `opt/layer${layer}/f${i}`, source: file });
    }
    layers.push(members);
  }
  const image = path.join(work, 'app-image');
  await buildImage({ ref: 'ferry.local/bench/app:1', outDir: image, cmd: ['/bin/sh'], layers });
  const compose = path.join(work, 'app-compose');
  await fs.mkdir(compose);
  await fs.writeFile(
    path.join(compose, 'docker-compose.yml'),
    'services:\n  main:\n    image: ferry.local/bench/app:1\n    command: ["/bin/sh", "-c", "sleep 3600"]\n',
  );
  await addApp(repo, { name: 'bench', composeDir: compose, images: [image] });
  await fs.rm(files, { recursive: true });
  return 'bench';
}
