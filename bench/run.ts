/**
 * `npm run bench`: how much ferry costs on top of the minimum work. Each figure is a ratio against a baseline
 * command that does only the unavoidable part, with the same durability, measured in the same run on the same data
 * (the exact commands are EXPORT_BASELINE and INSTALL_BASELINE below; the bench prints them):
 *   export   vs  ostree init + ostree pull-local --disable-fsync (archive -> archive) of the target commit + copying
 *               the app blobs + one sync of the media's filesystem (ferry too pulls without fsync and flushes once)
 *   install  vs  copying and hashing the app blobs onto the device + ostree pull-local --untrusted (bundle -> sysroot
 *               repo) + ostree admin deploy + one sync of the device's filesystem
 *   verify   vs  JSON.parse + canonicalize + one ed25519 verify of a targets.json of 10,000 targets
 *   encrypted: install of an encrypted bundle  vs  install of the same bundle as a plain tar (both unpack beside the
 *            device's storage; the encrypted one also hashes the ciphertext, then decrypts it), and its peak RSS for a
 *            small and a large payload
 *   forms: peak RSS of export and install of the same bundle as a directory, a tar, a zip, an encrypted bundle and a
 *            static delta (goal: 100 MiB each, whatever the bundle's size)
 * and the size of a delta bundle (export --from) against the full bundle, for a one-package change (new files) and
 * for a package upgrade (existing binaries changed in place).
 * Bundles are written to another filesystem than the factory (a tmpfs standing in for the stick), as in the field.
 * The devices live on an ext4 filesystem image the bench makes and loop-mounts, so that every fsync costs what it
 * costs on a device, on both sides of the install figure.
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
import { promises as fs, mkdirSync, mkdtempSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { loadDeviceConfig } from '../src/device/config.js';
import { devicePaths } from '../src/device/paths.js';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { addTarget } from '../src/repo/add-target.js';
import { initFactoryRepo, openFactoryRepo } from '../src/repo/factory-repo.js';
import { commitSimRootfs } from '../src/sim/rootfs.js';
import { createSimDevice, simConfigDir } from '../src/sim/sim-device.js';
import { benchApp } from './app.js';
import { rebuildBinaries, writeTree } from './data.js';
import { median, report, type Sample } from './report.js';

const number = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const RUNS = number('FERRY_BENCH_RUNS', 7);
const ROOTFS_MB = number('FERRY_BENCH_ROOTFS_MB', 600);
const ROOTFS_FILES = number('FERRY_BENCH_ROOTFS_FILES', 50_000);
const APPS_MB = number('FERRY_BENCH_APPS_MB', 200);
const TARGETS = number('FERRY_BENCH_TARGETS', 10_000);
const PACKAGE = { files: 300, bytes: 20 * 1048576 };
/** The package upgrade (target 4, from 2): this many of the rootfs's binaries rebuilt in place. */
const UPGRADE = { files: 40 };
/** Which figures to measure (export and install go together): all by default. */
const ONLY = new Set((process.env['FERRY_BENCH_ONLY'] ?? 'copy,delta,verify,encrypted,forms').split(','));
const MiB = 1048576;
/** FERRY_BENCH_DEVICES_FS=tmpfs: the devices on a tmpfs, where an fsync costs nothing (the tmpfs figures). */
const DEVICES_ON_TMPFS = process.env['FERRY_BENCH_DEVICES_FS'] === 'tmpfs';
/** Run as the file itself, as a symlink on the PATH runs it: its first line starts node with the CLI's flags. */
const ferryCli = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'ferry.js');

function measure(command: string, args: string[], env: Record<string, string> = {}): Sample {
  // What earlier steps left unwritten (a device built, a tree removed) is flushed first, outside the timing: the
  // disk's writeback then lands on nobody's figure.
  spawnSync('sync');
  const result = spawnSync('/usr/bin/time', ['-f', '%e %M', command, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });
  const last = result.stderr.trim().split('\n').pop() ?? '';
  const [seconds, rss] = last.split(' ').map(Number);
  if (result.status !== 0 && result.status !== 100)
    throw new Error(`${command} ${args.join(' ')} failed (${result.status}): ${result.stderr}`);
  return { seconds: seconds!, maxRssKb: rss! };
}

/** Runs `script` in bash with `env` set: a baseline is printed as it runs, its paths in those variables. */
function sh(script: string, env: Record<string, string> = {}): Sample {
  return measure('bash', ['-c', `set -e; ${script}`], env);
}

/**
 * The export baseline: the rootfs objects and the app blobs onto the stick, with ferry's durability: ostree pulls
 * without its transaction's fsyncs, and the stick's filesystem is flushed once at the end (ferry: one syncfs).
 */
const EXPORT_BASELINE =
  'mkdir -p "$STICK/ostree_repo" && ostree init --mode=archive --repo="$STICK/ostree_repo" && ' +
  'ostree --repo="$STICK/ostree_repo" pull-local --disable-fsync "$FACTORY/ostree_repo" "$COMMIT" && ' +
  'mkdir -p "$STICK/apps" && cp -r "$FACTORY/apps/blobs" "$STICK/apps/" && sync --file-system "$STICK"';

/**
 * The install baseline: the app blobs copied onto the device and hashed (ferry hashes them as it copies), the rootfs
 * pulled with every object checked (ostree's fsyncs kept, as in ferry's install) and deployed, and the device's
 * filesystem flushed once, so that the blobs are as durable as ferry's.
 */
const INSTALL_BASELINE =
  'cp -r "$BUNDLE/apps/blobs" "$DEVICE/app-blobs" && sha256sum "$DEVICE"/app-blobs/sha256/* >/dev/null && ' +
  'ostree --repo="$SYSROOT/ostree/repo" pull-local --untrusted "$BUNDLE/ostree_repo" "$COMMIT" && ' +
  'ostree admin --sysroot="$SYSROOT" deploy --os=lmp "$COMMIT" && sync --file-system "$DEVICE"';

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

interface DeviceFilesystem {
  /** Where the devices go: the root of the mounted ext4 filesystem. */
  readonly dir: string;
  /** Unmounts it and removes the image; safe to call when making it failed half way. */
  release(): void;
}

/**
 * An ext4 filesystem for the devices: a sparse image of `sizeMiB` under `parent` (FERRY_BENCH_DEVICES, else the temp
 * directory beside the factory), made with mkfs.ext4 and loop-mounted. On a tmpfs an fsync costs nothing; on ext4 it
 * costs a journal commit and a flush of the disk below, and both sides of the install pay it. Mounting needs root.
 * With FERRY_BENCH_DEVICES_FS=tmpfs the devices go on a tmpfs instead.
 */
function mountDeviceFilesystem(parent: string, sizeMiB: number): DeviceFilesystem {
  const home = mkdtempSync(path.join(parent, 'ferry-bench-devices-'));
  const image = path.join(home, 'devices.ext4');
  const dir = path.join(home, 'mnt');
  let mounted = false;
  const release = () => {
    if (mounted) {
      spawnSync('chattr', ['-R', '-i', dir], { stdio: 'ignore' });
      const umount = spawnSync('umount', [dir], { encoding: 'utf8' });
      if (umount.status !== 0) console.log(`(could not unmount ${dir}: ${umount.stderr.trim()}; left there)`);
      else mounted = false;
    }
    if (!mounted) rmSync(home, { recursive: true, force: true });
  };
  try {
    mkdirSync(dir);
    let mount;
    if (DEVICES_ON_TMPFS) {
      mount = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m`, 'tmpfs', dir], { encoding: 'utf8' });
    } else {
      writeFileSync(image, '');
      truncateSync(image, sizeMiB * MiB);
      runOrThrow('mkfs.ext4', ['-q', '-F', image]);
      // noinit_itable: the kernel does not zero the inode tables in the background, during the timed runs.
      mount = spawnSync('mount', ['-o', 'loop,noinit_itable', image, dir], { encoding: 'utf8' });
    }
    if (mount.status !== 0)
      throw new Error(
        `could not mount the devices' filesystem (the bench needs root): ${(mount.stderr || String(mount.error)).trim()}`,
      );
    mounted = true;
  } catch (error) {
    release();
    throw error;
  }
  console.log(
    DEVICES_ON_TMPFS
      ? `devices: on a tmpfs of ${(sizeMiB / 1024).toFixed(1)} GiB (FERRY_BENCH_DEVICES_FS=tmpfs)`
      : `devices: on ext4, a ${(sizeMiB / 1024).toFixed(1)} GiB image loop-mounted from ${parent}`,
  );
  return { dir, release };
}

/** Frees what a run deleted on the devices' filesystem in the image below, so that it does not grow run by run. */
function trimDeviceFilesystem(devices: DeviceFilesystem): void {
  spawnSync('sync');
  spawnSync('fstrim', [devices.dir], { stdio: 'ignore' });
}

function runOrThrow(command: string, args: string[]): void {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.status !== 0)
    throw new Error(`${command} ${args.join(' ')} failed (${result.status}): ${result.stderr || String(result.error)}`);
}

/** What target 4's package upgrade changed: how many binaries, and their bytes. */
interface Upgrade {
  readonly files: number;
  readonly bytes: number;
}

/**
 * The factory of the bench: target 1 is the small rootfs the devices start from, 2 the full rootfs and its app, 3 is
 * 2 plus one package (new files), 4 is 2 with a package upgrade (UPGRADE.files of its binaries rebuilt in place).
 * Built under `dir`, or taken from there when an earlier run with FERRY_BENCH_DATA built it (the `ready` marker
 * holds what the upgrade changed).
 */
async function benchFactory(dir: string): Promise<{ repo: FactoryRepo; upgrade: Upgrade }> {
  const factory = path.join(dir, 'factory');
  const ready = path.join(dir, 'ready');
  const marker = await fs.readFile(ready, 'utf8').catch(() => undefined);
  if (marker !== undefined) {
    let upgrade: Upgrade | undefined;
    try {
      upgrade = (JSON.parse(marker) as { upgrade?: Upgrade }).upgrade;
    } catch {
      upgrade = undefined;
    }
    if (upgrade === undefined)
      throw new Error(`${dir} holds data of an older bench, without the package upgrade (target 4): remove it`);
    console.log(`data: reused from ${dir}`);
    return { repo: await openFactoryRepo(factory), upgrade };
  }
  const started = performance.now();
  const build = path.join(dir, 'build');
  await commitSimRootfs({ repo: build, branch: 'bench/v1', version: '1' });
  const tree = path.join(dir, 'tree');
  const commit = (version: string) =>
    runOrThrow('ostree', [
      `--repo=${build}`,
      'commit',
      `--branch=bench/v${version}`,
      `--tree=dir=${tree}`,
      '-s',
      `v${version}`,
    ]);
  runOrThrow('ostree', [`--repo=${build}`, 'checkout', '-U', 'bench/v1', tree]);
  await writeTree(tree, { files: ROOTFS_FILES, bytes: ROOTFS_MB * MiB, under: 'usr/share/bench', seed: 'rootfs' });
  commit('2');
  await writeTree(tree, { ...PACKAGE, under: 'usr/share/package', seed: 'package', textShare: 0.5 });
  commit('3');
  // Back to 2's tree, then the upgrade on top of it.
  await fs.rm(path.join(tree, 'usr/share/package'), { recursive: true });
  const rebuilt = await rebuildBinaries(tree, { under: 'usr/share/bench', files: UPGRADE.files, seed: 'upgrade' });
  const upgrade: Upgrade = { files: rebuilt.files.length, bytes: rebuilt.bytes };
  commit('4');
  runOrThrow('rm', ['-rf', tree]);

  const repo = await initFactoryRepo(factory, { rootExpiresInDays: 365 });
  const app = await benchApp(dir, repo, APPS_MB);
  const target = (version: string, ref: string, apps: Array<{ name: string }>) =>
    addTarget(repo, { name: 'bench', version, hardwareIds: ['bench'], tags: ['main'], ref, ostreeRepo: build, apps });
  await target('1', 'bench/v1', []);
  await target('2', 'bench/v2', [{ name: app }]);
  await target('3', 'bench/v3', [{ name: app }]);
  await target('4', 'bench/v4', [{ name: app }]);
  await fs.rm(build, { recursive: true });
  await fs.writeFile(ready, JSON.stringify({ upgrade }));
  console.log(
    `data: rootfs ${ROOTFS_FILES} files, ${ROOTFS_MB} MiB; apps ${APPS_MB} MiB of layers; built in ${((performance.now() - started) / 1000).toFixed(0)} s`,
  );
  return { repo, upgrade };
}

async function main(): Promise<void> {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-bench-'));
  const kept = process.env['FERRY_BENCH_DATA'];
  const media = await mediaDir();
  let devices: DeviceFilesystem | undefined;
  try {
    if (ONLY.has('copy') || ONLY.has('encrypted') || ONLY.has('forms')) {
      // Room for the devices of one run: the encrypted figure's three, each with its bundle unpacked beside it.
      devices = mountDeviceFilesystem(process.env['FERRY_BENCH_DEVICES'] ?? work, 8 * (ROOTFS_MB + APPS_MB) + 2048);
    }
    if (kept !== undefined) await fs.mkdir(kept, { recursive: true });
    const { repo, upgrade } = await benchFactory(kept ?? work);
    const v2 = { name: 'bench-2', commit: (await repo.targets())['bench-2']!.hashes['sha256']! };
    console.log(`${RUNS} runs each, medians`);

    if (ONLY.has('copy')) await benchCopy(repo, v2, media, devices!);
    if (ONLY.has('delta')) {
      benchDelta(
        repo,
        media,
        'bench-3',
        `a one-package change: ${PACKAGE.files} new files, ${PACKAGE.bytes / MiB} MiB`,
      );
      benchDelta(
        repo,
        media,
        'bench-4',
        `a package upgrade: ${upgrade.files} binaries of ${(upgrade.bytes / MiB).toFixed(1)} MiB changed in place, 1 byte in every 4 KiB page`,
      );
    }
    if (ONLY.has('verify')) await benchVerifyTargets(work);
    if (ONLY.has('encrypted')) await benchEncrypted(repo, media, devices!.dir);
    if (ONLY.has('forms')) await benchForms(repo, media, devices!);
  } finally {
    devices?.release();
    spawnSync('chattr', ['-R', '-i', work], { stdio: 'ignore' });
    rmSync(work, { recursive: true, force: true });
    rmSync(media, { recursive: true, force: true });
  }
}

/**
 * Export of bench-2 onto the stick and its install on a device at bench-1, each against its baseline (printed first,
 * as it runs: its paths are the variables it names).
 */
async function benchCopy(
  repo: FactoryRepo,
  v2: { name: string; commit: string },
  media: string,
  devices: DeviceFilesystem,
): Promise<void> {
  console.log(`baseline export:  ${EXPORT_BASELINE}`);
  console.log(`baseline install: ${INSTALL_BASELINE}`);
  const exportFerry: Sample[] = [];
  const exportBase: Sample[] = [];
  const installFerry: Sample[] = [];
  const installBase: Sample[] = [];
  // One untimed copy first: the factory is then in the page cache for every timed run, not only for the runs
  // after the first (a cold read of a 4 GiB factory takes longer than the copy itself).
  const warmUp = path.join(media, 'warm-up');
  sh(EXPORT_BASELINE, { FACTORY: repo.dir, COMMIT: v2.commit, STICK: warmUp });
  await fs.rm(warmUp, { recursive: true });
  for (let run = 0; run < RUNS; run++) {
    const dir = path.join(devices.dir, `run${run}`);
    const stick = path.join(media, `run${run}`);
    await fs.mkdir(dir);
    await fs.mkdir(stick);
    // Who goes first alternates from run to run, so that neither side always finds the caches the other warmed.
    const ferryFirst = run % 2 === 0;
    const bundle = path.join(stick, 'bundle');
    const copy = path.join(stick, 'baseline');
    const exports = [
      () => exportFerry.push(measure(ferryCli, ['export', '--repo', repo.dir, v2.name, bundle, '--tag', 'main'])),
      () => exportBase.push(sh(EXPORT_BASELINE, { FACTORY: repo.dir, COMMIT: v2.commit, STICK: copy })),
    ];
    for (const step of ferryFirst ? exports : exports.reverse()) step();
    await fs.rm(copy, { recursive: true });

    const device = path.join(dir, 'device');
    await createSimDevice(device, repo, { target: 'bench-1' });
    const baseDevice = path.join(dir, 'base-device');
    await createSimDevice(baseDevice, repo, { target: 'bench-1' });
    const installs = [
      () => installFerry.push(measure(ferryCli, ['install', '--config', simConfigDir(device), '--src-dir', bundle])),
      () =>
        installBase.push(
          sh(INSTALL_BASELINE, {
            BUNDLE: bundle,
            COMMIT: v2.commit,
            DEVICE: baseDevice,
            SYSROOT: path.join(baseDevice, 'sysroot'),
          }),
        ),
    ];
    for (const step of ferryFirst ? installs : installs.reverse()) step();
    spawnSync('chattr', ['-R', '-i', dir], { stdio: 'ignore' });
    await fs.rm(dir, { recursive: true });
    await fs.rm(stick, { recursive: true });
    trimDeviceFilesystem(devices);
  }
  report('export', 'baseline export above, onto the tmpfs', exportFerry, exportBase);
  report('install', `baseline install above, on ${DEVICES_ON_TMPFS ? 'a tmpfs' : 'ext4'}`, installFerry, installBase);
  const peak = Math.max(...[...exportFerry, ...installFerry].map((sample) => sample.maxRssKb)) / 1024;
  console.log(`peak     RSS   ${peak.toFixed(0).padStart(6)} MiB of ferry, at most (goal: 100 MiB)`);
}

/**
 * The size of the delta bundle of `target` from bench-2 (export --from) against its full bundle, and of the same delta
 * with the rootfs as a static delta (--rootfs static-delta: binary diffs of changed files) against the object-level one.
 */
function benchDelta(repo: FactoryRepo, media: string, target: string, change: string): void {
  const full = path.join(media, `full-${target}`);
  const delta = path.join(media, `delta-${target}`);
  const staticDelta = path.join(media, `static-delta-${target}`);
  const exportTo = (to: string, ...args: string[]) =>
    measure(ferryCli, ['export', '--repo', repo.dir, target, to, '--tag', 'main', ...args]);
  exportTo(full);
  exportTo(delta, '--from', 'bench-2');
  exportTo(staticDelta, '--from', 'bench-2', '--rootfs', 'static-delta');
  const [fullBytes, deltaBytes, staticBytes] = [full, delta, staticDelta].map(treeBytesSync) as [
    number,
    number,
    number,
  ];
  const mib = (bytes: number) => (bytes / MiB).toFixed(1);
  console.log(
    `delta    size  ${((100 * deltaBytes) / fullBytes).toFixed(1).padStart(6)}%  (${target} export --from bench-2: ${mib(deltaBytes)} MiB of the full ${mib(fullBytes)} MiB, for ${change})`,
  );
  console.log(
    `${''.padEnd(8)} size  ${((100 * staticBytes) / deltaBytes).toFixed(1).padStart(6)}%  (the same with --rootfs static-delta: ${mib(staticBytes)} MiB of the object-level ${mib(deltaBytes)} MiB)`,
  );
  for (const dir of [full, delta, staticDelta]) rmSync(dir, { recursive: true });
}

function ferry(...args: string[]): void {
  const result = spawnSync(ferryCli, args, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`ferry ${args.join(' ')} failed (${result.status}): ${result.stderr}`);
}

/**
 * Installing an encrypted bundle against installing the same bundle as a plain tar, each on a fresh device: both
 * unpack it beside the device's storage and then install alike; the encrypted one also reads the ciphertext once to
 * check it against its signed digest, and decrypts it while it unpacks. Peak RSS is also taken for a payload some
 * hundred times smaller (the bare rootfs of bench-1): streamed, it should not grow with the payload.
 */
async function benchEncrypted(repo: FactoryRepo, media: string, devices: string): Promise<void> {
  const recipient = await recipientOf(repo, media, devices);
  const plain = path.join(media, 'plain.tar');
  const sealed = path.join(media, 'sealed.bundle');
  const sealedSmall = path.join(media, 'sealed-small.bundle');
  ferry('export', '--repo', repo.dir, 'bench-2', plain, '--tag', 'main', '--archive', 'tar');
  ferry('export', '--repo', repo.dir, 'bench-2', sealed, '--tag', 'main', '--encrypt-to', recipient.certificate);
  ferry('export', '--repo', repo.dir, 'bench-1', sealedSmall, '--tag', 'main', '--encrypt-to', recipient.certificate);
  const recipientDevice = (name: string) => recipientDeviceOf(repo, devices, name, recipient);
  const install = (dir: string, bundle: string) =>
    measure(ferryCli, ['install', '--config', simConfigDir(dir), '--src-dir', bundle]);
  const plainRuns: Sample[] = [];
  const sealedRuns: Sample[] = [];
  const smallRuns: Sample[] = [];
  for (let run = 0; run < RUNS; run++) {
    const plainDevice = await recipientDevice(`plain-${run}`);
    const sealedDevice = await recipientDevice(`sealed-${run}`);
    const smallDevice = await recipientDevice(`small-${run}`);
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
  for (const file of [plain, sealed, sealedSmall]) await fs.rm(file);
}

/** A device's key, certified as a recipient of encrypted bundles: made once, for every figure that needs one. */
interface Recipient {
  readonly certificate: string;
  readonly keyFile: string;
}

let recipientMade: Promise<Recipient> | undefined;

function recipientOf(repo: FactoryRepo, media: string, devices: string): Promise<Recipient> {
  recipientMade ??= (async () => {
    ferry('ca', 'init', '--repo', repo.dir);
    const holder = path.join(devices, 'key-holder');
    await createSimDevice(holder, repo, { target: 'bench-1' });
    ferry('device', 'provision', '--config', simConfigDir(holder));
    const holderPaths = devicePaths(await loadDeviceConfig([simConfigDir(holder)]));
    const certificate = path.join(media, 'recipient.crt');
    ferry('device', 'certify', '--repo', repo.dir, holderPaths.decryptionRequestFile, '--out', certificate);
    return { certificate, keyFile: holderPaths.decryptionKeyFile };
  })();
  return recipientMade;
}

/** A fresh device at bench-1 holding the recipient's key. */
async function recipientDeviceOf(
  repo: FactoryRepo,
  devices: string,
  name: string,
  recipient: Recipient,
): Promise<string> {
  const dir = path.join(devices, name);
  await createSimDevice(dir, repo, { target: 'bench-1' });
  const paths = devicePaths(await loadDeviceConfig([simConfigDir(dir)]));
  await fs.mkdir(path.dirname(paths.decryptionKeyFile), { recursive: true });
  await fs.copyFile(recipient.keyFile, paths.decryptionKeyFile);
  return dir;
}

/**
 * Peak RSS of export and install for every form of bench-2's bundle (the full rootfs and its app): a directory, a
 * tar, a zip, an encrypted bundle and a static delta, each exported once and installed once on a fresh device at
 * bench-1 (peak RSS varies little from run to run, unlike time). Every form has the same ceiling, whatever the
 * bundle's size: it streams.
 */
async function benchForms(repo: FactoryRepo, media: string, devices: DeviceFilesystem): Promise<void> {
  const recipient = await recipientOf(repo, media, devices.dir);
  const forms = [
    { name: 'directory', file: 'form-dir', args: [] },
    { name: 'tar', file: 'form.tar', args: ['--archive', 'tar'] },
    { name: 'zip', file: 'form.zip', args: ['--archive', 'zip'] },
    { name: 'encrypted', file: 'form.bundle', args: ['--encrypt-to', recipient.certificate] },
    { name: 'static-delta', file: 'form-delta', args: ['--rootfs', 'static-delta'] },
  ];
  const mib = (sample: Sample) => (sample.maxRssKb / 1024).toFixed(0).padStart(4);
  let peak = 0;
  for (const form of forms) {
    const bundle = path.join(media, form.file);
    const exported = measure(ferryCli, [
      'export',
      '--repo',
      repo.dir,
      'bench-2',
      bundle,
      '--tag',
      'main',
      ...form.args,
    ]);
    const device = await recipientDeviceOf(repo, devices.dir, `form-${form.name}`, recipient);
    const installed = measure(ferryCli, ['install', '--config', simConfigDir(device), '--src-dir', bundle]);
    console.log(
      `form     RSS   export ${mib(exported)} MiB, install ${mib(installed)} MiB  (${form.name}, ${(treeBytesSync(bundle) / MiB).toFixed(0)} MiB; export ${exported.seconds.toFixed(1)} s, install ${installed.seconds.toFixed(1)} s)`,
    );
    peak = Math.max(peak, exported.maxRssKb, installed.maxRssKb);
    spawnSync('chattr', ['-R', '-i', device], { stdio: 'ignore' });
    await fs.rm(device, { recursive: true });
    await fs.rm(bundle, { recursive: true });
    trimDeviceFilesystem(devices);
  }
  console.log(
    `forms    RSS   ${(peak / 1024).toFixed(0).padStart(6)} MiB of ferry, at most, over every form (goal: 100 MiB)`,
  );
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
  // CPU time too (the process's, every thread): on a shared machine it varies far less than wall time.
  const oursCpu: number[] = [];
  const baselineCpu: number[] = [];
  const cpuSince = (start: NodeJS.CpuUsage) => {
    const used = process.cpuUsage(start);
    return (used.user + used.system) / 1000;
  };
  for (let run = 0; run < RUNS; run++) {
    const trusted = await fs.mkdtemp(path.join(work, 'trusted-'));
    await fs.copyFile((await repo.rootFiles())[0]!, path.join(trusted, 'root.json'));
    let started = performance.now();
    let cpu = process.cpuUsage();
    const verified = await verifyBundleMetadata({ trustedDir: trusted, bundleTufDir: path.join(bundle, 'tuf') });
    ours.push(performance.now() - started);
    oursCpu.push(cpuSince(cpu));
    await discardScratch(verified);

    started = performance.now();
    cpu = process.cpuUsage();
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
    baselineCpu.push(cpuSince(cpu));
  }
  const pick = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const [a, b] = [pick(ours), pick(baseline)];
  const [c, d] = [pick(oursCpu), pick(baselineCpu)];
  console.log(
    `verify   time  ${(a / b).toFixed(2).padStart(6)}x  (ferry ${a.toFixed(0)} ms, baseline ${b.toFixed(0)} ms: JSON.parse + canonicalize + one ed25519 verify of a targets.json with ${TARGETS} targets)`,
  );
  console.log(
    `verify   CPU   ${(c / d).toFixed(2).padStart(6)}x  (ferry ${c.toFixed(0)} ms, baseline ${d.toFixed(0)} ms of CPU time)`,
  );
}

await main();
