import { promises as fs } from 'node:fs';
import path from 'node:path';
import { addApp } from '../../src/apps/workstation/add-app.js';
import { buildImage, busyboxLayer } from '../../src/apps/workstation/build-image.js';
import { addTarget, type TargetSpec } from '../../src/repo/add-target.js';
import { initFactoryRepo, type FactoryRepo } from '../../src/repo/factory-repo.js';
import { commitSimRootfs } from '../../src/sim/rootfs.js';
import { HARDWARE_ID, TAG, tempDir } from './factory.js';

export interface AppsFactory {
  readonly dir: string;
  readonly repo: FactoryRepo;
  /** Target names, each at a higher version than the last. */
  readonly targets: {
    /** rootfs A, heartbeat v1 */
    readonly base: string;
    /** rootfs A, heartbeat v2: an apps-only update */
    readonly heartbeatV2: string;
    /** rootfs A, heartbeat v1 and an added system-policy app */
    readonly systemApp: string;
    /** rootfs B, heartbeat v2: rootfs and apps */
    readonly mixed: string;
    /** rootfs A, no apps: heartbeat removed */
    readonly noApps: string;
    /** rootfs A, heartbeat v1 and an app that exits at once */
    readonly crasher: string;
    /** rootfs B, heartbeat v1 and the app that exits at once */
    readonly crasherNewRootfs: string;
    /** a rootfs that never boots, heartbeat v1 */
    readonly bootFails: string;
    /** a rootfs that ships a new boot firmware, heartbeat v1 */
    readonly bootFirmware: string;
    /** rootfs A, heartbeat v1 and an app that runs for two seconds, then exits */
    readonly flaky: string;
  };
  /** The OSTree commits of rootfs A and B. */
  readonly rootfs: { readonly a: string; readonly b: string };
  /** Image manifest digests of heartbeat:1 and heartbeat:2. */
  readonly images: { readonly v1: string; readonly v2: string };
}

/** A one-service compose file: the image runs `command` under sh, with a data volume and no network. */
export const compose = (image: string, command: string, restart = 'unless-stopped'): string =>
  [
    'version: "3"',
    'services:',
    '  main:',
    `    image: ${image}`,
    '    network_mode: none',
    `    restart: "${restart}"`,
    `    command: ["/bin/sh", "-c", ${JSON.stringify(command)}]`,
    '    volumes:',
    '      - data:/data',
    'volumes:',
    '  data:',
    '',
  ].join('\n');

// PID 1 ignores SIGTERM unless it traps it: without the trap every stop would wait out docker's timeout.
const HEARTBEAT =
  'trap "exit 0" TERM; while true; do cat /etc/image-version > /data/heartbeat; date >> /data/heartbeat; sleep 1; done';

/** A factory with two rootfs versions, two heartbeat image versions sharing a busybox layer, and four apps. */
export async function buildAppsFactory(): Promise<AppsFactory> {
  const dir = await tempDir('apps-factory');
  const repo = await initFactoryRepo(path.join(dir, 'repo'), { rootExpiresInDays: 365, factory: 'test' });
  const build = path.join(dir, 'build');
  const rootfs = {
    a: await commitSimRootfs({ repo: build, branch: 'rootfs/a', version: '1' }),
    b: await commitSimRootfs({ repo: build, branch: 'rootfs/b', version: '2' }),
  };
  await commitSimRootfs({ repo: build, branch: 'rootfs/fails', version: '3', bootFails: true });
  await commitSimRootfs({ repo: build, branch: 'rootfs/firmware', version: '4', bootFirmware: '2026.10' });

  const image = async (version: string) => {
    const out = path.join(dir, `image-${version}`);
    const manifest = await buildImage({
      ref: `ferry.local/test/heartbeat:${version}`,
      outDir: out,
      cmd: ['/bin/sh'],
      layers: [
        busyboxLayer(),
        [
          { type: 'directory', name: 'etc' },
          { type: 'file', name: 'etc/image-version', content: `${version}\n` },
        ],
      ],
    });
    return { out, digest: manifest.digest };
  };
  const [image1, image2] = [await image('1'), await image('2')];

  const app = async (name: string, text: string, images: string[]) => {
    const composeDir = path.join(dir, `compose-${name}-${Math.random().toString(16).slice(2)}`);
    await fs.mkdir(composeDir);
    await fs.writeFile(path.join(composeDir, 'docker-compose.yml'), text);
    return (await addApp(repo, { name, composeDir, images })).digest;
  };
  const heartbeat1 = await app('heartbeat', compose('ferry.local/test/heartbeat:1', HEARTBEAT), [image1.out]);
  const heartbeat2 = await app('heartbeat', compose('ferry.local/test/heartbeat:2', HEARTBEAT), [image2.out]);
  const sysapp = await app(
    'sysapp',
    compose('ferry.local/test/heartbeat:1', 'trap "exit 0" TERM; while true; do sleep 1; done'),
    [image1.out],
  );
  const crasher = await app('crasher', compose('ferry.local/test/heartbeat:1', 'exit 3', 'no'), [image1.out]);
  const flaky = await app('flaky', compose('ferry.local/test/heartbeat:1', 'sleep 2; exit 4', 'no'), [image1.out]);

  let version = 0;
  const target = async (ref: string, apps: NonNullable<TargetSpec['apps']>) => {
    version += 1;
    return (
      await addTarget(repo, {
        name: 'apps-lmp',
        version: String(version),
        hardwareIds: [HARDWARE_ID],
        tags: [TAG],
        ref,
        ostreeRepo: build,
        apps,
      })
    ).name;
  };
  const targets = {
    base: await target('rootfs/a', [{ name: 'heartbeat', digest: heartbeat1 }]),
    heartbeatV2: await target('rootfs/a', [{ name: 'heartbeat', digest: heartbeat2 }]),
    systemApp: await target('rootfs/a', [
      { name: 'heartbeat', digest: heartbeat1 },
      { name: 'sysapp', digest: sysapp, restartPolicy: 'system' },
    ]),
    mixed: await target('rootfs/b', [{ name: 'heartbeat', digest: heartbeat2 }]),
    noApps: await target('rootfs/a', []),
    crasher: await target('rootfs/a', [
      { name: 'heartbeat', digest: heartbeat1 },
      { name: 'crasher', digest: crasher },
    ]),
    crasherNewRootfs: await target('rootfs/b', [
      { name: 'heartbeat', digest: heartbeat1 },
      { name: 'crasher', digest: crasher },
    ]),
    bootFails: await target('rootfs/fails', [{ name: 'heartbeat', digest: heartbeat1 }]),
    bootFirmware: await target('rootfs/firmware', [{ name: 'heartbeat', digest: heartbeat1 }]),
    flaky: await target('rootfs/a', [
      { name: 'heartbeat', digest: heartbeat1 },
      { name: 'flaky', digest: flaky },
    ]),
  };
  return { dir, repo, targets, rootfs, images: { v1: image1.digest, v2: image2.digest } };
}

/**
 * A one-service compose file whose healthcheck passes once /tmp/ok exists, looked at every second; `command` decides
 * whether it ever does. `startPeriod` keeps it `starting` that long; `retries` failures after it make it `unhealthy`.
 */
export const composeWithHealthcheck = (
  image: string,
  command: string,
  health: { retries: number; startPeriod: string },
): string =>
  [
    'version: "3.4"',
    'services:',
    '  main:',
    `    image: ${image}`,
    '    network_mode: none',
    '    restart: "unless-stopped"',
    `    command: ["/bin/sh", "-c", ${JSON.stringify(command)}]`,
    '    healthcheck:',
    '      test: ["CMD", "test", "-f", "/tmp/ok"]',
    '      interval: 1s',
    '      timeout: 1s',
    `      retries: ${health.retries}`,
    `      start_period: ${health.startPeriod}`,
    '',
  ].join('\n');

/** Targets (above every version buildAppsFactory made) whose apps have healthchecks, each with heartbeat v1. */
export interface HealthTargets {
  /** rootfs A and an app whose healthcheck turns healthy (goal healthy, from its compose file) */
  readonly healthy: string;
  /** rootfs A and an app whose healthcheck stays `starting` for an hour */
  readonly stuck: string;
  /** rootfs B and an app whose healthcheck turns `unhealthy` after a second */
  readonly sickNewRootfs: string;
}

/** Adds the apps with healthchecks and their targets to an apps factory; each app prints a line a second. */
export async function addHealthTargets(factory: AppsFactory): Promise<HealthTargets> {
  // Heartbeat v1, as the base target pins it: an update from base leaves its container as it is.
  const base = (await factory.repo.targets())[factory.targets.base] as unknown as {
    custom: { docker_compose_apps: Record<string, { uri: string }> };
  };
  const heartbeat = base.custom.docker_compose_apps['heartbeat']!.uri.split('@')[1]!;
  const image = path.join(factory.dir, 'image-1');
  const script = (name: string, ok: boolean) =>
    `trap "exit 0" TERM; echo "${name}: starting"; ${ok ? 'touch /tmp/ok; ' : ''}` +
    `while true; do echo "${name}: ${ok ? 'serving' : 'waiting for /tmp/ok'}"; sleep 1; done`;
  const app = async (name: string, ok: boolean, health: { retries: number; startPeriod: string }) => {
    const composeDir = path.join(factory.dir, `compose-${name}`);
    await fs.mkdir(composeDir);
    const text = composeWithHealthcheck('ferry.local/test/heartbeat:1', script(name, ok), health);
    await fs.writeFile(path.join(composeDir, 'docker-compose.yml'), text);
    return (await addApp(factory.repo, { name, composeDir, images: [image] })).digest;
  };
  const ready = await app('ready', true, { retries: 3, startPeriod: '0s' });
  const stuck = await app('stuck', false, { retries: 3, startPeriod: '3600s' });
  const sick = await app('sick', false, { retries: 1, startPeriod: '0s' });
  let version = 100;
  const target = async (ref: string, name: string, digest: string) => {
    version += 1;
    return (
      await addTarget(factory.repo, {
        name: 'apps-lmp',
        version: String(version),
        hardwareIds: [HARDWARE_ID],
        tags: [TAG],
        ref,
        ostreeRepo: path.join(factory.dir, 'build'),
        apps: [
          { name: 'heartbeat', digest: heartbeat },
          { name, digest },
        ],
      })
    ).name;
  };
  return {
    healthy: await target('rootfs/a', 'ready', ready),
    stuck: await target('rootfs/a', 'stuck', stuck),
    sickNewRootfs: await target('rootfs/b', 'sick', sick),
  };
}
