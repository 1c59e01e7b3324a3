/**
 * `npm run bench`: how much ferry costs on top of the minimum work. Each figure is a ratio against a baseline
 * command that does only the unavoidable part, measured in the same run on the same data:
 *   export   vs  ostree init + ostree pull-local (archive -> archive) of the target commit + copying the app blobs
 *   install  vs  ostree pull-local --untrusted (bundle -> sysroot repo) + ostree admin deploy + sha256 of the blobs
 *   verify   vs  JSON.parse + canonicalize + one ed25519 verify of a targets.json of 10,000 targets
 *   encrypted: install of an encrypted bundle  vs  install of the same bundle as a plain tar (both unpack beside the
 *            device's storage; the encrypted one also hashes the ciphertext, then decrypts it), and its peak RSS for a
 *            small and a large payload
 * and the size of a delta bundle (export --from) for a one-package change, against the full bundle.
 * Bundles are written to another filesystem than the factory (a tmpfs standing in for the stick), as in the field.
 * Wall time and peak RSS come from GNU time; each command runs several times (after one untimed warm-up copy), ferry
 * and baseline taking turns to go first, with the disk flushed before each, and the median is kept. The data is
 * generated deterministically, so every run measures the same bytes.
 */
import { spawnSync } from 'node:child_process';
import { createPublicKey, verify } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { canonicalize } from '@tufjs/canonical-json';
import { exportBundle } from '../src/bundle/workstation/export.js';
import type { FactoryRepo } from '../src/repo/factory-repo.js';
import { expiresInDays } from '../src/tuf/expires.js';
import { discardScratch, verifyBundleMetadata } from '../src/tuf/verify-metadata.js';
import { promises as fs, rmSync, statSync } from 'node:fs';
import { loadDeviceConfig } from '../src/device/config.js';
import { devicePaths } from '../src/device/paths.js';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { addApp } from '../src/apps/workstation/add-app.js';
import { buildImage, busyboxLayer } from '../src/apps/workstation/build-image.js';
import type { TarMember } from '../src/util/tar-pack.js';
import { addTarget } from '../src/repo/add-target.js';
import { initFactoryRepo, openFactoryRepo } from '../src/repo/factory-repo.js';
import { commitSimRootfs } from '../src/sim/rootfs.js';
import { createSimDevice, simConfigDir } from '../src/sim/sim-device.js';
import { deterministicBytes, writeTree } from './data.js';

const number = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const RUNS = number('FERRY_BENCH_RUNS', 7);
const ROOTFS_MB = number('FERRY_BENCH_ROOTFS_MB', 600);
const ROOTFS_FILES = number('FERRY_BENCH_ROOTFS_FILES', 50_000);
const APPS_MB = number('FERRY_BENCH_APPS_MB', 200);
const TARGETS = number('FERRY_BENCH_TARGETS', 10_000);
const PACKAGE = { files: 300, bytes: 20 * 1048576 };
/** Which figures to measure (export and install go together): all by default. */
const ONLY = new Set((process.env['FERRY_BENCH_ONLY'] ?? 'copy,delta,verify,encrypted').split(','));
const MiB = 1048576;
const ferryCli = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'ferry.js');

interface Sample {
  seconds: number;
  maxRssKb: number;
}

function measure(command: string, args: string[]): Sample {
  // What earlier steps left unwritten (a device built, a tree removed) is flushed first, outside the timing: the
  // disk's writeback then lands on nobody's figure.
  spawnSync('sync');
  const result = spawnSync('/usr/bin/time', ['-f', '%e %M', command, ...args], { encoding: 'utf8' });
  const last = result.stderr.trim().split('\n').pop() ?? '';
  const [seconds, rss] = last.split(' ').map(Number);
  if (result.status !== 0 && result.status !== 100)
    throw new Error(`${command} ${args.join(' ')} failed (${result.status}): ${result.stderr}`);
  return { seconds: seconds!, maxRssKb: rss! };
}

function sh(script: string): Sample {
  return measure('bash', ['-c', `set -e; ${script}`]);
}

function median(samples: Sample[]): Sample {
  const pick = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  return { seconds: pick(samples.map((s) => s.seconds)), maxRssKb: pick(samples.map((s) => s.maxRssKb)) };
}

/** The median of each side and their ratio; the spread of the runs beside it, since this machine is noisy. */
function report(name: string, baselineName: string, ferryRuns: Sample[], baselineRuns: Sample[]): void {
  const [ferry, baseline] = [median(ferryRuns), median(baselineRuns)];
  const ratio = (a: number, b: number) => (b > 0 ? (a / b).toFixed(2) : 'n/a');
  const spread = (runs: Sample[]) => {
    const seconds = runs.map((sample) => sample.seconds);
    return `${Math.min(...seconds).toFixed(2)}–${Math.max(...seconds).toFixed(2)}`;
  };
  console.log(
    `${name.padEnd(8)} time  ${ratio(ferry.seconds, baseline.seconds).padStart(6)}x  (ferry ${ferry.seconds.toFixed(2)} s [${spread(ferryRuns)}], baseline ${baseline.seconds.toFixed(2)} s [${spread(baselineRuns)}]: ${baselineName})`,
  );
  console.log(
    `${''.padEnd(8)} RSS   ${ratio(ferry.maxRssKb, baseline.maxRssKb).padStart(6)}x  (ferry peak ${(ferry.maxRssKb / 1024).toFixed(0)} MiB, baseline ${(baseline.maxRssKb / 1024).toFixed(0)} MiB)`,
  );
}

/** Where bundles go: a filesystem other than the factory's, as a stick is. */
async function mediaDir(): Promise<string> {
  const wanted = process.env['FERRY_BENCH_MEDIA'] ?? '/dev/shm';
  try {
    return await fs.mkdtemp(path.join(wanted, 'ferry-bench-media-'));
  } catch {
    console.log(`(${wanted} is not writable: bundles go beside the factory)`);
    return fs.mkdtemp(path.join(os.tmpdir(), 'ferry-bench-media-'));
  }
}

/** An app of one image: busybox, then four layers of binaries that make up APPS_MB. */
async function benchApp(work: string, repo: FactoryRepo): Promise<string> {
  const layers: TarMember[][] = [busyboxLayer()];
  const files = path.join(work, 'app-files');
  await fs.mkdir(files);
  const perLayer = Math.floor((APPS_MB * MiB) / 4);
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

/**
 * The factory of the bench: target 1 is the small rootfs the devices start from, 2 the full rootfs and its app, 3 is
 * 2 plus one package. Built under `dir`, or taken from there when an earlier run with FERRY_BENCH_DATA built it.
 */
async function benchFactory(dir: string): Promise<FactoryRepo> {
  const factory = path.join(dir, 'factory');
  if (
    await fs.stat(path.join(dir, 'ready')).then(
      () => true,
      () => false,
    )
  ) {
    console.log(`data: reused from ${dir}`);
    return openFactoryRepo(factory);
  }
  const started = performance.now();
  const build = path.join(dir, 'build');
  await commitSimRootfs({ repo: build, branch: 'bench/v1', version: '1' });
  const tree = path.join(dir, 'tree');
  spawnSync('ostree', [`--repo=${build}`, 'checkout', '-U', 'bench/v1', tree], { stdio: 'inherit' });
  await writeTree(tree, { files: ROOTFS_FILES, bytes: ROOTFS_MB * MiB, under: 'usr/share/bench', seed: 'rootfs' });
  spawnSync('ostree', [`--repo=${build}`, 'commit', '--branch=bench/v2', `--tree=dir=${tree}`, '-s', 'v2'], {
    stdio: 'ignore',
  });
  await writeTree(tree, { ...PACKAGE, under: 'usr/share/package', seed: 'package', textShare: 0.5 });
  spawnSync('ostree', [`--repo=${build}`, 'commit', '--branch=bench/v3', `--tree=dir=${tree}`, '-s', 'v3'], {
    stdio: 'ignore',
  });
  spawnSync('rm', ['-rf', tree]);

  const repo = await initFactoryRepo(factory, { rootExpiresInDays: 365 });
  const app = await benchApp(dir, repo);
  const target = (version: string, ref: string, apps: Array<{ name: string }>) =>
    addTarget(repo, { name: 'bench', version, hardwareIds: ['bench'], tags: ['main'], ref, ostreeRepo: build, apps });
  await target('1', 'bench/v1', []);
  await target('2', 'bench/v2', [{ name: app }]);
  await target('3', 'bench/v3', [{ name: app }]);
  await fs.rm(build, { recursive: true });
  await fs.writeFile(path.join(dir, 'ready'), '');
  console.log(
    `data: rootfs ${ROOTFS_FILES} files, ${ROOTFS_MB} MiB; apps ${APPS_MB} MiB of layers; built in ${((performance.now() - started) / 1000).toFixed(0)} s`,
  );
  return repo;
}

async function main(): Promise<void> {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-bench-'));
  const kept = process.env['FERRY_BENCH_DATA'];
  const media = await mediaDir();
  // The devices: on the media's tmpfs unless FERRY_BENCH_DEVICES names another place. The disk of this VM is shared
  // and stalls at random for seconds, longer than all that ferry adds to an install; on a tmpfs both sides are
  // measured without those stalls (and without the cost of flushing, which they pay alike on a real disk).
  const devices = await fs.mkdtemp(path.join(process.env['FERRY_BENCH_DEVICES'] ?? media, 'devices-'));
  try {
    if (kept !== undefined) await fs.mkdir(kept, { recursive: true });
    const repo = await benchFactory(kept ?? work);
    const v2 = { name: 'bench-2', commit: (await repo.targets())['bench-2']!.hashes['sha256']! };
    console.log(`${RUNS} runs each, medians`);

    const exportFerry: Sample[] = [];
    const exportBase: Sample[] = [];
    const installFerry: Sample[] = [];
    const installBase: Sample[] = [];
    const blobs = path.join(repo.dir, 'apps', 'blobs');
    if (ONLY.has('copy')) {
      // One untimed copy first: the factory is then in the page cache for every timed run, not only for the runs
      // after the first (a cold read of a 4 GiB factory takes longer than the copy itself).
      const warmUp = path.join(media, 'warm-up');
      sh(
        `ostree init --mode=archive --repo=${warmUp} && ostree --repo=${warmUp} pull-local ${repo.ostree.path} ${v2.commit} && cat ${blobs}/sha256/* >/dev/null`,
      );
      await fs.rm(warmUp, { recursive: true });
      for (let run = 0; run < RUNS; run++) {
        const dir = path.join(devices, `run${run}`);
        const stick = path.join(media, `run${run}`);
        await fs.mkdir(dir);
        await fs.mkdir(stick);
        // Who goes first alternates from run to run, so that neither side always finds the caches the other warmed.
        const ferryFirst = run % 2 === 0;
        const bundle = path.join(stick, 'bundle');
        const copy = path.join(stick, 'baseline');
        const exports = [
          () =>
            exportFerry.push(
              measure('node', [ferryCli, 'export', '--repo', repo.dir, v2.name, bundle, '--tag', 'main']),
            ),
          () =>
            exportBase.push(
              sh(
                `mkdir -p ${copy}/ostree_repo && ostree init --mode=archive --repo=${copy}/ostree_repo && ostree --repo=${copy}/ostree_repo pull-local ${repo.ostree.path} ${v2.commit} && mkdir -p ${copy}/apps && cp -r ${blobs} ${copy}/apps/`,
              ),
            ),
        ];
        for (const step of ferryFirst ? exports : exports.reverse()) step();
        await fs.rm(copy, { recursive: true });

        const device = path.join(dir, 'device');
        await createSimDevice(device, repo, { target: 'bench-1' });
        const baseDevice = path.join(dir, 'base-device');
        await createSimDevice(baseDevice, repo, { target: 'bench-1' });
        const sysroot = path.join(baseDevice, 'sysroot');
        const installs = [
          () =>
            installFerry.push(
              measure('node', [ferryCli, 'install', '--config', simConfigDir(device), '--src-dir', bundle]),
            ),
          () =>
            installBase.push(
              sh(
                `ostree --repo=${sysroot}/ostree/repo pull-local --untrusted ${bundle}/ostree_repo ${v2.commit} && ostree admin --sysroot=${sysroot} deploy --os=lmp ${v2.commit} && sha256sum ${bundle}/apps/blobs/sha256/* >/dev/null`,
              ),
            ),
        ];
        for (const step of ferryFirst ? installs : installs.reverse()) step();
        spawnSync('chattr', ['-R', '-i', dir], { stdio: 'ignore' });
        await fs.rm(dir, { recursive: true });
        await fs.rm(stick, { recursive: true });
      }
      report('export', 'ostree pull-local archive->archive + cp of the app blobs', exportFerry, exportBase);
      report(
        'install',
        'ostree pull-local --untrusted + admin deploy + sha256sum of the app blobs',
        installFerry,
        installBase,
      );
      const peak = Math.max(...[...exportFerry, ...installFerry].map((sample) => sample.maxRssKb)) / 1024;
      console.log(`peak     RSS   ${peak.toFixed(0).padStart(6)} MiB of ferry, at most (goal: 150 MiB)`);
    }
    if (ONLY.has('delta')) {
      // The delta for a one-package change (2 -> 3), against the full bundle of 3.
      const full = path.join(media, 'full-v3');
      const delta = path.join(media, 'delta-v3');
      measure('node', [ferryCli, 'export', '--repo', repo.dir, 'bench-3', full, '--tag', 'main']);
      measure('node', [ferryCli, 'export', '--repo', repo.dir, 'bench-3', delta, '--tag', 'main', '--from', 'bench-2']);
      const fullBytes = treeBytesSync(full);
      const deltaBytes = treeBytesSync(delta);
      console.log(
        `delta    size  ${((100 * deltaBytes) / fullBytes).toFixed(1).padStart(6)}%  (export --from: ${(deltaBytes / MiB).toFixed(1)} MiB of the full ${(fullBytes / MiB).toFixed(1)} MiB, for a one-package change of ${PACKAGE.files} files, ${PACKAGE.bytes / MiB} MiB)`,
      );
      await fs.rm(full, { recursive: true });
      await fs.rm(delta, { recursive: true });
    }
    if (ONLY.has('verify')) await benchVerifyTargets(work);
    if (ONLY.has('encrypted')) await benchEncrypted(repo, media, devices);
  } finally {
    spawnSync('chattr', ['-R', '-i', work], { stdio: 'ignore' });
    rmSync(work, { recursive: true, force: true });
    spawnSync('chattr', ['-R', '-i', devices], { stdio: 'ignore' });
    rmSync(devices, { recursive: true, force: true });
    rmSync(media, { recursive: true, force: true });
  }
}

function ferry(...args: string[]): void {
  const result = spawnSync('node', [ferryCli, ...args], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`ferry ${args.join(' ')} failed (${result.status}): ${result.stderr}`);
}

/**
 * Installing an encrypted bundle against installing the same bundle as a plain tar, each on a fresh device: both
 * unpack it beside the device's storage and then install alike; the encrypted one also reads the ciphertext once to
 * check it against its signed digest, and decrypts it while it unpacks. Peak RSS is also taken for a payload some
 * hundred times smaller (the bare rootfs of bench-1): streamed, it should not grow with the payload.
 */
async function benchEncrypted(repo: FactoryRepo, media: string, devices: string): Promise<void> {
  ferry('ca', 'init', '--repo', repo.dir);
  const holder = path.join(devices, 'key-holder');
  await createSimDevice(holder, repo, { target: 'bench-1' });
  ferry('device', 'provision', '--config', simConfigDir(holder));
  const holderPaths = devicePaths(await loadDeviceConfig([simConfigDir(holder)]));
  const certificate = path.join(media, 'recipient.crt');
  ferry('device', 'certify', '--repo', repo.dir, holderPaths.decryptionRequestFile, '--out', certificate);
  const plain = path.join(media, 'plain.tar');
  const sealed = path.join(media, 'sealed.bundle');
  const sealedSmall = path.join(media, 'sealed-small.bundle');
  ferry('export', '--repo', repo.dir, 'bench-2', plain, '--tag', 'main', '--archive', 'tar');
  ferry('export', '--repo', repo.dir, 'bench-2', sealed, '--tag', 'main', '--encrypt-to', certificate);
  ferry('export', '--repo', repo.dir, 'bench-1', sealedSmall, '--tag', 'main', '--encrypt-to', certificate);
  /** A fresh device at bench-1 holding the recipient's key. */
  const recipient = async (name: string): Promise<string> => {
    const dir = path.join(devices, name);
    await createSimDevice(dir, repo, { target: 'bench-1' });
    const paths = devicePaths(await loadDeviceConfig([simConfigDir(dir)]));
    await fs.mkdir(path.dirname(paths.decryptionKeyFile), { recursive: true });
    await fs.copyFile(holderPaths.decryptionKeyFile, paths.decryptionKeyFile);
    return dir;
  };
  const install = (dir: string, bundle: string) =>
    measure('node', [ferryCli, 'install', '--config', simConfigDir(dir), '--src-dir', bundle]);
  const plainRuns: Sample[] = [];
  const sealedRuns: Sample[] = [];
  const smallRuns: Sample[] = [];
  for (let run = 0; run < RUNS; run++) {
    const plainDevice = await recipient(`plain-${run}`);
    const sealedDevice = await recipient(`sealed-${run}`);
    const smallDevice = await recipient(`small-${run}`);
    const steps = [
      () => plainRuns.push(install(plainDevice, plain)),
      () => sealedRuns.push(install(sealedDevice, sealed)),
    ];
    for (const step of run % 2 === 0 ? steps : steps.reverse()) step();
    smallRuns.push(install(smallDevice, sealedSmall));
    for (const dir of [plainDevice, sealedDevice, smallDevice]) {
      spawnSync('chattr', ['-R', '-i', dir], { stdio: 'ignore' });
      await fs.rm(dir, { recursive: true });
    }
  }
  const payloadMiB = (file: string) => (statSync(file).size / MiB).toFixed(0);
  report('encrypted', `install of the same bundle as a plain tar (${payloadMiB(plain)} MiB)`, sealedRuns, plainRuns);
  console.log(
    `${''.padEnd(8)} RSS   peak ${(median(sealedRuns).maxRssKb / 1024).toFixed(0)} MiB decrypting ${payloadMiB(sealed)} MiB, ${(median(smallRuns).maxRssKb / 1024).toFixed(0)} MiB decrypting ${payloadMiB(sealedSmall)} MiB: the bare rootfs, already installed`,
  );
  for (const file of [plain, sealed, sealedSmall, certificate]) await fs.rm(file);
}

/** The bytes of the regular files under `dir`. */
function treeBytesSync(dir: string): number {
  const out = spawnSync('du', ['-sb', dir], { encoding: 'utf8' }).stdout;
  return Number(out.split('\t')[0]);
}

/**
 * Verifying a targets.json of TARGETS targets: ferry's whole metadata walk (tuf-js from the trusted root through
 * timestamp, snapshot and targets, then bundle-targets.json) against the minimum: JSON.parse, canonicalize and one
 * ed25519 verify of that one file. In-process timings, the median of RUNS.
 */
async function benchVerifyTargets(work: string): Promise<void> {
  const repo = await initFactoryRepo(path.join(work, 'many-factory'), { rootExpiresInDays: 365 });
  const build = path.join(work, 'many-build');
  await commitSimRootfs({ repo: build, branch: 'bench/v1', version: '1' });
  await addTarget(repo, {
    name: 'bench',
    version: '1',
    hardwareIds: ['bench'],
    tags: ['main'],
    ref: 'bench/v1',
    ostreeRepo: build,
  });
  const entry = (await repo.targets())['bench-1']!;
  const many: Record<string, unknown> = {};
  for (let i = 0; i < TARGETS; i++)
    many[`bench-${1000 + i}`] = { ...entry, custom: { ...entry.custom, version: String(1000 + i) } };
  await repo.publishTargets({ ...(await repo.targets()), ...many }, expiresInDays(new Date(), 30));
  const bundle = path.join(work, 'many');
  await exportBundle(repo, { targetName: 'bench-1', destination: bundle, tag: 'main', type: 'ci', expiresInDays: 30 });
  const targetsFile = path.join(bundle, 'tuf', 'targets.json');
  const root = JSON.parse(await fs.readFile((await repo.rootFiles())[0]!, 'utf8')) as {
    signed: { keys: Record<string, { keyval: { public: string } }> };
  };
  const ours: number[] = [];
  const baseline: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const trusted = await fs.mkdtemp(path.join(work, 'trusted-'));
    await fs.copyFile((await repo.rootFiles())[0]!, path.join(trusted, 'root.json'));
    let started = performance.now();
    const verified = await verifyBundleMetadata({ trustedDir: trusted, bundleTufDir: path.join(bundle, 'tuf') });
    ours.push(performance.now() - started);
    await discardScratch(verified);

    started = performance.now();
    const document = JSON.parse(await fs.readFile(targetsFile, 'utf8')) as {
      signed: unknown;
      signatures: Array<{ keyid: string; sig: string }>;
    };
    const signature = document.signatures[0]!;
    const raw = Buffer.from(root.signed.keys[signature.keyid]!.keyval.public, 'hex');
    const key = createPublicKey({
      key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), raw]),
      format: 'der',
      type: 'spki',
    });
    if (!verify(null, Buffer.from(canonicalize(document.signed)), key, Buffer.from(signature.sig, 'hex')))
      throw new Error('the baseline could not verify targets.json');
    baseline.push(performance.now() - started);
  }
  const pick = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const [a, b] = [pick(ours), pick(baseline)];
  console.log(
    `verify   time  ${(a / b).toFixed(2).padStart(6)}x  (ferry ${a.toFixed(0)} ms, baseline ${b.toFixed(0)} ms: JSON.parse + canonicalize + one ed25519 verify of a targets.json with ${TARGETS} targets)`,
  );
}

await main();
