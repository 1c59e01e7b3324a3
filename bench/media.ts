/**
 * `npm run bench:media`: ferry on a stick as slow as a real one. Export onto the stick and install from it run inside
 * the real-boot VM (QEMU, TCG), on a virtio disk that QEMU throttles to a USB stick's profile (USB_STICK_THROTTLE:
 * 20 MB/s write, 40 MB/s read, 300 write requests a second), formatted by the guest's own mkfs.vfat -F 32 (and
 * mkfs.exfat) and mounted by the guest's kernel. The factory is on a second, unthrottled virtio disk; install goes
 * into the VM's own OSTree sysroot (exit 100), on a fresh copy of the system disk for every install. Each figure is a
 * ratio against the floor on the same stick in the same run:
 *   export   vs  the same bytes written as ONE sequential file from the factory disk onto the stick, then sync -f
 *   install  vs  the same bytes read as one sequential file from the stick, plus the same ostree work without ferry
 *               (static-delta apply-offline, or pull-local --untrusted, into the sysroot's repo; admin deploy), the
 *               app blobs copied onto the device and hashed, and one sync -f (this part with the bundle already
 *               read into the page cache: its reading is the first part)
 * for both forms of the rootfs: `--rootfs static-delta` (one file) and the default ostree_repo/ (one file per
 * object). Times come from the guest's /proc/uptime around the command, with the guest's page cache dropped first;
 * each figure runs FERRY_BENCH_RUNS times, ferry and its floor taking turns to go first, and the medians are kept.
 */
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { addTarget } from '../src/repo/add-target.js';
import type { FactoryRepo } from '../src/repo/factory-repo.js';
import { copyHostBinary } from '../test/realboot/support/host-binaries.js';
import {
  copyDisk,
  copyFactory,
  realbootImages,
  serialLogFile,
  type RealbootImages,
} from '../test/realboot/support/images.js';
import { VM_HARDWARE_ID, VM_OS, VM_TAG } from '../test/realboot/support/rootfs.js';
import { VM_TARGET_NAME } from '../test/realboot/support/factory.js';
import { USB_STICK_THROTTLE, Vm, type StickDrive } from '../test/realboot/support/vm.js';
import { benchApp } from './app.js';
import { deterministicBytes, writeTree } from './data.js';
import { median, report, type Sample } from './report.js';

const number = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const RUNS = number('FERRY_BENCH_RUNS', 3);
const ROOTFS_MB = number('FERRY_BENCH_MEDIA_ROOTFS_MB', 150);
const ROOTFS_FILES = number('FERRY_BENCH_MEDIA_FILES', 10_000);
const APPS_MB = number('FERRY_BENCH_MEDIA_APPS_MB', 50);
/** The sticks' filesystems, each measured in turn: FAT32 (the goal's) and exFAT. */
const FILESYSTEMS = (process.env['FERRY_BENCH_MEDIA_FS'] ?? 'vfat,exfat').split(',') as StickFilesystem[];
const MiB = 1048576;
const ferryCli = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'ferry.js');

type StickFilesystem = 'vfat' | 'exfat';
type RootfsForm = 'static-delta' | 'ostree-repo';
const FORMS: readonly RootfsForm[] = ['static-delta', 'ostree-repo'];

/** The guest's memory: the page cache must hold a bundle, ostree and node beside it. */
const VM_MEMORY_MIB = 2048;
/** A step in the guest under TCG may take many minutes at the default scale. */
const GUEST_STEP_TIMEOUT_MS = 60 * 60_000;
/** The bench's target version: above the VM factory's v1–v3. */
const BENCH_VERSION = '10';

/** Where the guest mounts the factory disk and the stick, and which virtio disk is which (the order of `sticks`). */
const DATA = '/mnt/data';
const STICK = '/mnt/stick';
const DATA_DEVICE = '/dev/vdb';
const STICK_DEVICES: Readonly<Record<RootfsForm, string>> = { 'static-delta': '/dev/vdc', 'ostree-repo': '/dev/vdd' };

/** How the guest formats a stick, with the host's tools copied onto the factory disk. */
const MKFS: Readonly<Record<StickFilesystem, string>> = {
  vfat: `${DATA}/tools/bin/mkfs.vfat -F 32 -n STICK`,
  exfat: `${DATA}/tools/bin/mkfs.exfat -L STICK`,
};

/** The export floor: $BYTES (what ferry wrote) as one sequential file from the factory disk onto the stick. */
const EXPORT_FLOOR =
  'dd if="$DATA/floor.bin" of="$STICK/floor.bin" bs=1M iflag=count_bytes count="$BYTES" 2>/dev/null && sync -f "$STICK"';
/** The install floor's reading: the floor file (the bundle's bytes) as one sequential read from the stick. */
const INSTALL_FLOOR_READ = 'dd if="$STICK/floor.bin" of=/dev/null bs=1M 2>/dev/null';
/** The install floor's ostree work per form, then the deploy, the app blobs and one flush, as ferry's install does. */
const INSTALL_FLOOR_WORK: Readonly<Record<RootfsForm, string>> = {
  'static-delta': 'ostree --repo=/sysroot/ostree/repo static-delta apply-offline "$BUNDLE/rootfs/$COMMIT.delta"',
  'ostree-repo': 'ostree --repo=/sysroot/ostree/repo pull-local --untrusted "$BUNDLE/ostree_repo" "$COMMIT"',
};
const INSTALL_FLOOR_DEPLOY =
  `ostree admin --sysroot=/sysroot deploy --os=${VM_OS} "$COMMIT" && cp -r "$BUNDLE/apps/blobs" /var/floor-blobs && ` +
  'sha256sum /var/floor-blobs/sha256/* >/dev/null && sync -f /sysroot';
/** Untimed, before the install floor's work: the bundle into the page cache (the read is timed on its own). */
const READ_BUNDLE = 'find "$BUNDLE" -type f | xargs cat >/dev/null';

/** The timed runs of one form on one filesystem. */
interface FormSamples {
  readonly exportFerry: Sample[];
  readonly exportFloor: Sample[];
  readonly installFerry: Sample[];
  /** The install floor: its sequential read plus its ostree work. */
  readonly installFloor: Sample[];
  /** The install floor's sequential read alone, for the stick's read rate. */
  readonly installFloorRead: Sample[];
}

interface BenchData {
  readonly target: string;
  readonly commit: string;
  /** The factory disk: an ext4 image holding the factory, the floor file, the floor scripts and the mkfs tools. */
  readonly dataDisk: string;
  /** The bytes of the files ferry writes per form, measured by an export on the host. */
  readonly bundleBytes: Readonly<Record<RootfsForm, number>>;
}

async function main(): Promise<void> {
  const work = await fs.mkdtemp(path.join(process.env['FERRY_BENCH_DEVICES'] ?? '/var/tmp', 'ferry-bench-media-'));
  try {
    const images = await realbootImages();
    const data = await benchData(images, work);
    console.log(
      `stick: a virtio disk throttled by QEMU to ${USB_STICK_THROTTLE.writeBytesPerSecond / 1e6} MB/s write, ${USB_STICK_THROTTLE.readBytesPerSecond / 1e6} MB/s read, ${USB_STICK_THROTTLE.writeRequestsPerSecond} write requests/s; the factory on an unthrottled one; a ${VM_MEMORY_MIB} MiB VM under TCG`,
    );
    console.log(`floor export:  ${EXPORT_FLOOR}`);
    console.log(`floor install: ${INSTALL_FLOOR_READ}, then (the bundle read untimed: ${READ_BUNDLE})`);
    for (const form of FORMS) console.log(`  ${form}: ${INSTALL_FLOOR_WORK[form]} && ${INSTALL_FLOOR_DEPLOY}`);
    console.log(`${RUNS} runs each, medians; $BYTES is what ferry writes: ${describeBytes(data.bundleBytes)}`);
    for (const filesystem of FILESYSTEMS) await benchFilesystem(images, data, filesystem, work);
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

function describeBytes(bytes: Readonly<Record<RootfsForm, number>>): string {
  return FORMS.map((form) => `${form} ${(bytes[form] / MiB).toFixed(1)} MiB`).join(', ');
}

/** Export and install of both forms on sticks of `filesystem`: RUNS rounds of one export boot and four install boots. */
async function benchFilesystem(
  images: RealbootImages,
  data: BenchData,
  filesystem: StickFilesystem,
  work: string,
): Promise<void> {
  const sticks = await stickImages(work, data);
  const drives: StickDrive[] = [
    data.dataDisk,
    ...FORMS.map((form) => ({ image: sticks[form], throttle: USB_STICK_THROTTLE })),
  ];
  const none = (): FormSamples => ({
    exportFerry: [],
    exportFloor: [],
    installFerry: [],
    installFloor: [],
    installFloorRead: [],
  });
  const samples: Record<RootfsForm, FormSamples> = { 'static-delta': none(), 'ostree-repo': none() };
  const files: Partial<Record<RootfsForm, string>> = {};
  for (let run = 0; run < RUNS; run++) {
    const ferryFirst = run % 2 === 0;
    await withVm(images, drives, work, `media-${filesystem}-export-${run}`, async (vm) => {
      if (run === 0) await calibrate(vm, STICK_DEVICES['static-delta']);
      if (run === 0 && filesystem === FILESYSTEMS[0]) await breakdown(vm, data);
      for (const form of FORMS) {
        const device = STICK_DEVICES[form];
        await vm.mustRun(`${MKFS[filesystem]} ${device} >/dev/null && mount -t ${filesystem} ${device} ${STICK}`);
        const exportArgs = `--repo ${DATA}/factory ${data.target} ${STICK}/bundle --tag ${VM_TAG}`;
        const steps = [
          async () =>
            samples[form].exportFerry.push(
              await timed(vm, `ferry export ${exportArgs}${form === 'static-delta' ? ' --rootfs static-delta' : ''}`),
            ),
          async () =>
            samples[form].exportFloor.push(
              await timed(vm, `BYTES=${data.bundleBytes[form]} sh ${DATA}/floor-export.sh`),
            ),
        ];
        for (const step of ferryFirst ? steps : steps.reverse()) await step();
        files[form] = (await vm.mustRun(`find ${STICK}/bundle -type f | wc -l`)).trim();
        await vm.mustRun(`umount ${STICK}`);
      }
    });
    for (const form of FORMS) {
      const device = STICK_DEVICES[form];
      const installs = [
        () =>
          withVm(images, drives, work, `media-${filesystem}-install-${form}-${run}`, async (vm) => {
            await vm.mustRun(`mount -t ${filesystem} ${device} ${STICK}`);
            samples[form].installFerry.push(await timed(vm, `ferry install --src-dir ${STICK}/bundle`, 100));
            await vm.mustRun(`umount ${STICK}`);
          }),
        () =>
          withVm(images, drives, work, `media-${filesystem}-floor-${form}-${run}`, async (vm) => {
            await vm.mustRun(`mount -t ${filesystem} ${device} ${STICK}`);
            const env = `BUNDLE=${STICK}/bundle COMMIT=${data.commit}`;
            const read = await timed(vm, `sh ${DATA}/floor-read.sh`);
            await vm.mustRun(`sync; echo 3 >/proc/sys/vm/drop_caches; ${env} sh ${DATA}/read-bundle.sh`);
            const apply = await timed(vm, `${env} sh ${DATA}/floor-install-${form}.sh`, 0, { dropCaches: false });
            samples[form].installFloorRead.push(read);
            samples[form].installFloor.push({ seconds: read.seconds + apply.seconds, maxRssKb: 0 });
            await vm.mustRun(`umount ${STICK}`);
          }),
      ];
      for (const install of ferryFirst ? installs : installs.reverse()) await install();
    }
  }
  const label = filesystem === 'vfat' ? 'FAT32' : 'exFAT';
  for (const form of FORMS) {
    const { exportFerry, exportFloor, installFerry, installFloor, installFloorRead } = samples[form];
    const bytes = data.bundleBytes[form];
    const rate = (runs: Sample[]) => (bytes / 1e6 / median(runs).seconds).toFixed(1);
    console.log(`${label} stick, --rootfs ${form}: ${files[form]} files, ${(bytes / MiB).toFixed(1)} MiB on the stick`);
    report('export', `the same bytes as one file, ${rate(exportFloor)} MB/s`, exportFerry, exportFloor, {
      rss: false,
      against: 'floor',
    });
    report(
      'install',
      `one sequential read (${rate(installFloorRead)} MB/s) + ostree + blobs`,
      installFerry,
      installFloor,
      { rss: false, against: 'floor' },
    );
  }
}

/** What the raw stick does in the guest, past the page cache, against the throttle it was given. */
const CALIBRATION_MIB = 32;
async function calibrate(vm: Vm, device: string): Promise<void> {
  const write = await timed(vm, `dd if=/dev/zero of=${device} bs=1M count=${CALIBRATION_MIB} oflag=direct`);
  const read = await timed(vm, `dd if=${device} of=/dev/null bs=1M count=${CALIBRATION_MIB} iflag=direct`);
  const rate = (sample: Sample) => ((CALIBRATION_MIB * MiB) / 1e6 / sample.seconds).toFixed(1);
  console.log(
    `stick as the guest sees it (dd of ${CALIBRATION_MIB} MiB with O_DIRECT onto ${device}): write ${rate(write)} MB/s, read ${rate(read)} MB/s`,
  );
}

/**
 * Where ferry's export time goes in the guest, measured once: node starting ferry (`ferry --version`), and the
 * `ostree static-delta generate` that export --rootfs static-delta runs, alone, into the factory disk.
 */
async function breakdown(vm: Vm, data: BenchData): Promise<void> {
  const startup = await timed(vm, 'ferry --version');
  const generate = await timed(
    vm,
    `ostree --repo=${DATA}/factory/ostree_repo static-delta generate --inline --min-fallback-size=0 --empty ` +
      `--to=${data.commit} --filename=${DATA}/generated.delta`,
  );
  await vm.mustRun(`rm -f ${DATA}/generated.delta`);
  console.log(
    `in the guest: ferry --version ${startup.seconds.toFixed(2)} s (node starting ferry); ostree static-delta generate of the rootfs alone ${generate.seconds.toFixed(2)} s`,
  );
}

/** Boots a fresh copy of the VM's grub disk with `drives` attached, mounts the factory disk, runs `body`, powers off. */
async function withVm(
  images: RealbootImages,
  drives: readonly StickDrive[],
  work: string,
  name: string,
  body: (vm: Vm) => Promise<void>,
): Promise<void> {
  const dir = await fs.mkdtemp(path.join(work, 'vm-'));
  const vm = await Vm.start({
    bootloader: 'grub',
    disk: await copyDisk(images, 'grub', dir),
    ubootRom: images.ubootRom,
    sticks: drives,
    logFile: await serialLogFile(name),
    memoryMiB: VM_MEMORY_MIB,
  });
  try {
    await vm.waitForBoot();
    await vm.mustRun(`mkdir -p ${DATA} ${STICK} && mount -t ext4 ${DATA_DEVICE} ${DATA}`);
    await body(vm);
    await vm.mustRun(`umount ${DATA}`);
    await vm.powerOff();
  } finally {
    await vm.kill();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/**
 * Runs `command` in the guest, its output to /tmp/step.log, and returns how long it took by the guest's
 * /proc/uptime; the guest's dirty pages are written and its page cache dropped first (unless told not to), outside
 * the timing. Fails unless the command exits with `expectedCode`.
 */
async function timed(
  vm: Vm,
  command: string,
  expectedCode = 0,
  options: { readonly dropCaches?: boolean } = {},
): Promise<Sample> {
  const before = options.dropCaches === false ? 'sync' : 'sync; echo 3 >/proc/sys/vm/drop_caches';
  const output = await vm.mustRun(
    `${before}; t0=$(cut -d" " -f1 /proc/uptime); ${command} >/tmp/step.log 2>&1; rc=$?; ` +
      't1=$(cut -d" " -f1 /proc/uptime); echo "elapsed $t0 $t1 $rc"',
    GUEST_STEP_TIMEOUT_MS,
  );
  const match = /elapsed ([\d.]+) ([\d.]+) (\d+)/.exec(output);
  if (match === null) throw vm.failure(`no timing from \`${command}\`: ${output}`);
  if (Number(match[3]) !== expectedCode) {
    const log = await vm.run('tail -c 3000 /tmp/step.log');
    throw vm.failure(`\`${command}\` exited with ${match[3]}, not ${expectedCode}:\n${log.output}`);
  }
  const seconds = Number(match[2]) - Number(match[1]);
  console.log(`  ${seconds.toFixed(2).padStart(8)} s  ${command}`);
  return { seconds, maxRssKb: 0 };
}

/** One sparse stick image per form, room for the bundle and the floor file beside it. */
async function stickImages(work: string, data: BenchData): Promise<Record<RootfsForm, string>> {
  const sticks = {} as Record<RootfsForm, string>;
  for (const form of FORMS) {
    const image = path.join(work, `stick-${form}.img`);
    await fs.rm(image, { force: true });
    await fs.writeFile(image, '');
    await fs.truncate(image, (Math.ceil((2.5 * data.bundleBytes[form]) / MiB) + 256) * MiB);
    sticks[form] = image;
  }
  return sticks;
}

/**
 * The bench's data, made on the host: a copy of the VM's factory (the device trusts its root) with one more target
 * for the VM's hardware id, whose rootfs is v1's plus ROOTFS_FILES files of ROOTFS_MB and whose app has APPS_MB of
 * layers; exported once here in both forms to know the bytes ferry writes; then put with the floor file, the floor
 * scripts and the guest's mkfs tools on an ext4 image (mkfs.ext4 -d) that the VM mounts.
 */
async function benchData(images: RealbootImages, work: string): Promise<BenchData> {
  const started = Date.now();
  const tree = path.join(work, 'data');
  await fs.mkdir(tree);
  const repo = await copyFactory(images, tree);
  const { target, commit } = await benchTarget(images, repo, work);

  const bundleBytes = {} as Record<RootfsForm, number>;
  /** The same export on the host, for what the emulated CPU costs in the guest. */
  const hostSeconds = {} as Record<RootfsForm, number>;
  for (const form of FORMS) {
    const bundle = path.join(work, `host-${form}`);
    const at = Date.now();
    run('node', [ferryCli, 'export', '--repo', repo.dir, target, bundle, '--tag', VM_TAG, '--rootfs', form]);
    hostSeconds[form] = (Date.now() - at) / 1000;
    bundleBytes[form] = await fileBytes(bundle);
    await fs.rm(bundle, { recursive: true });
  }

  const floorBytes = Math.max(...Object.values(bundleBytes));
  const floor = await fs.open(path.join(tree, 'floor.bin'), 'w');
  for (let at = 0, chunk = 0; at < floorBytes; at += 16 * MiB, chunk++)
    await floor.write(deterministicBytes(`floor ${chunk}`, Math.min(16 * MiB, floorBytes - at)));
  await floor.close();
  const script = (name: string, command: string) =>
    fs.writeFile(path.join(tree, name), `set -e\nDATA=${DATA} STICK=${STICK}\n${command}\n`);
  await script('floor-export.sh', EXPORT_FLOOR);
  await script('floor-read.sh', INSTALL_FLOOR_READ);
  await script('read-bundle.sh', READ_BUNDLE);
  for (const form of FORMS)
    await script(`floor-install-${form}.sh`, `${INSTALL_FLOOR_WORK[form]} && ${INSTALL_FLOOR_DEPLOY}`);
  for (const tool of ['/usr/sbin/mkfs.vfat', '/usr/sbin/mkfs.exfat'])
    await copyHostBinary(tool, path.join(tree, 'tools'), `/bin/${path.basename(tool)}`, { mergedUsr: false });

  const dataDisk = path.join(work, 'data.ext4');
  // Room beside the data for the static delta export generates next to the factory, and for the bundle versions.
  const sizeMiB = Math.ceil((await fileBytes(tree)) / MiB) + Math.ceil((2 * floorBytes) / MiB) + 512;
  run('mkfs.ext4', ['-q', '-F', '-d', tree, dataDisk, `${sizeMiB}M`]);
  await fs.rm(tree, { recursive: true });
  console.log(
    `data: rootfs of a kernel and ${ROOTFS_FILES} files, ${ROOTFS_MB} MiB; apps ${APPS_MB} MiB of layers; a ${sizeMiB} MiB factory disk; built in ${((Date.now() - started) / 1000).toFixed(0)} s`,
  );
  console.log(
    `on the host (no emulation, no throttle), ferry export took ${FORMS.map((form) => `${hostSeconds[form].toFixed(1)} s with --rootfs ${form}`).join(', ')}`,
  );
  // The factory keeps the static delta that export made (src/repo/static-delta-cache.ts), and the factory disk is
  // made from it: the guest's exports are later exports of the same change, which check and copy the kept delta.
  console.log(
    'the static delta made by that export is kept in the factory: the exports in the guest copy it, as every export after the first of a change does (the first one also pays `ostree static-delta generate`, timed alone below)',
  );
  return { target, commit, dataDisk, bundleBytes };
}

/**
 * The bench's target in `repo`: a rootfs of v1's kernel, initramfs and /usr/etc (what `ostree admin deploy` needs)
 * and the generated files, and the bench's app. The bench installs it and never boots it, so the rest of v1 (node and
 * the other binaries, 150 MiB) is left out: the rootfs is the stated scale.
 */
async function benchTarget(
  images: RealbootImages,
  repo: FactoryRepo,
  work: string,
): Promise<{ target: string; commit: string }> {
  const base = images.commits[images.targets.v1]!;
  const tree = path.join(work, 'tree');
  for (const subpath of ['/usr/lib/modules', '/usr/etc']) {
    await fs.mkdir(path.dirname(path.join(tree, subpath)), { recursive: true });
    run('ostree', [
      `--repo=${repo.ostree.path}`,
      'checkout',
      '-U',
      `--subpath=${subpath}`,
      base,
      path.join(tree, subpath),
    ]);
  }
  await writeTree(tree, { files: ROOTFS_FILES, bytes: ROOTFS_MB * MiB, under: 'usr/share/bench', seed: 'rootfs' });
  const build = path.join(work, 'build');
  const branch = 'bench/media';
  run('ostree', ['init', '--mode=archive', `--repo=${build}`]);
  run('ostree', [`--repo=${build}`, 'commit', `--branch=${branch}`, `--tree=dir=${tree}`, '-s', 'media bench']);
  await fs.rm(tree, { recursive: true });
  const app = await benchApp(work, repo, APPS_MB);
  const added = await addTarget(repo, {
    name: VM_TARGET_NAME,
    version: BENCH_VERSION,
    hardwareIds: [VM_HARDWARE_ID],
    tags: [VM_TAG],
    ref: branch,
    ostreeRepo: build,
    apps: [{ name: app }],
  });
  await fs.rm(build, { recursive: true });
  return { target: added.name, commit: added.commit };
}

/** The bytes of the regular files under `dir` (what a stick holds, whatever its filesystem's directory sizes). */
async function fileBytes(dir: string): Promise<number> {
  const out = run('find', [dir, '-type', 'f', '-printf', '%s\\n']);
  return out
    .split('\n')
    .filter((line) => line !== '')
    .reduce((sum, line) => sum + Number(line), 0);
}

function run(command: string, args: string[]): string {
  const result = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 256 * MiB });
  if (result.status !== 0)
    throw new Error(`${command} ${args.join(' ')} failed (${result.status}): ${result.stderr || String(result.error)}`);
  return result.stdout;
}

// An interrupted bench ends through process.exit, whose handler (vm.ts) stops the QEMU it started.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
await main();
