import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { exportBundle } from '../../../src/bundle/workstation/export.js';
import { addTarget } from '../../../src/repo/add-target.js';
import type { FactoryRepo } from '../../../src/repo/factory-repo.js';
import { runTool } from '../../../src/util/tool.js';
import { guestBootedCommit } from './guest.js';
import { copyFactory, type RealbootImages } from './images.js';
import { BROKEN_INIT_MARKER, VERSION_FILE, VM_HARDWARE_ID, VM_TAG } from './rootfs.js';
import { buildFat32Stick } from './stick-image.js';
import type { BootInfo, Vm } from './vm.js';

/**
 * Power cuts on the real machine: ferry stopped at one of its fault points (`FERRY_PAUSE_AT`), or a random moment of
 * a long `ostree pull-local`, and then the power cut from the host (SIGKILL of QEMU: what the guest had not flushed
 * is lost). This module holds what the power-cut test needs beside the image builder and the VM driver.
 */

/** Where the guest mounts the stick. */
export const STICK_MOUNT = '/mnt/stick';

/** Codes after which the README's recovery stops: done, undone (install again), rolled back. */
export const SETTLED_CODES: readonly number[] = [0, 32, 99];

/** Random files a long pull has to copy: big enough for a pull of several seconds in the guest. */
const PAYLOAD_FILES = 240;
const PAYLOAD_FILE_BYTES = 200 * 1024;

export interface PowerCutStick {
  /** The FAT32 stick image holding one bundle with both targets. */
  readonly image: string;
  /** A good target whose rootfs carries a random payload, so that its pull takes seconds: v1 updates to it. */
  readonly long: string;
  /** A target whose init dies (the commit of the factory's v3), newer than `long`: the bootloader falls back. */
  readonly broken: string;
}

/**
 * A copy of the real-boot factory with two more targets (the cached factory is shared, so it is never written),
 * exported together onto one FAT32 stick. The copy keeps the factory's keys, so the device's root trusts it; every
 * bundle the test installs comes from the copy, whose metadata versions only grow.
 */
export async function buildPowerCutStick(images: RealbootImages, dir: string): Promise<PowerCutStick> {
  const repo = await copyFactory(images, dir);
  const base = images.commits[images.targets.v2];
  const brokenCommit = images.commits[images.targets.v3InitDies];
  if (base === undefined || brokenCommit === undefined) throw new Error('the real-boot factory lacks v2 or v3');

  const overlay = path.join(dir, 'overlay');
  const payload = path.join(overlay, 'usr/share/ferry-vm-payload');
  await fs.mkdir(payload, { recursive: true });
  for (let index = 0; index < PAYLOAD_FILES; index++)
    await fs.writeFile(path.join(payload, `part-${index}`), randomBytes(PAYLOAD_FILE_BYTES));
  await fs.mkdir(path.dirname(path.join(overlay, VERSION_FILE)), { recursive: true });
  await fs.writeFile(path.join(overlay, VERSION_FILE), 'v4\n');
  const branch = 'ferry-vm/v4-long-pull';
  // The payload laid over v2's tree: a bootable rootfs whose pull onto a v1 device is mostly the payload.
  await runTool('ostree', [
    `--repo=${repo.ostree.path}`,
    'commit',
    `--branch=${branch}`,
    `--tree=ref=${base}`,
    `--tree=dir=${overlay}`,
    '--owner-uid=0',
    '--owner-gid=0',
    '--subject=ferry test machine v4 (long pull)',
  ]);
  const long = await addVmTarget(repo, '4', { ref: branch });
  const broken = await addVmTarget(repo, '5', { commit: brokenCommit });

  const bundle = path.join(dir, 'bundle');
  for (const [targetName, mode] of [
    [long, 'new'],
    [broken, 'add-target'],
  ] as const)
    await exportBundle(repo, { targetName, destination: bundle, tag: VM_TAG, type: 'ci', expiresInDays: 30, mode });
  const image = path.join(dir, 'stick.img');
  await buildFat32Stick(bundle, image);
  await fs.rm(bundle, { recursive: true, force: true });
  await fs.rm(overlay, { recursive: true, force: true });
  return { image, long, broken };
}

async function addVmTarget(
  repo: FactoryRepo,
  version: string,
  source: { readonly ref?: string; readonly commit?: string },
): Promise<string> {
  const added = await addTarget(repo, {
    name: 'ferry-vm',
    version,
    hardwareIds: [VM_HARDWARE_ID],
    tags: [VM_TAG],
    ...source,
  });
  return added.name;
}

/** How a ferry command started in the background ended up: stopped at its fault point, or exited. */
export type Paused =
  | { readonly paused: true; readonly pid: number }
  | { readonly paused: false; readonly code: number; readonly output: string };

/**
 * Starts `ferry <args>` in the guest's background with `FERRY_PAUSE_AT=<point>` and polls /proc until it is stopped
 * there (State: T) or has exited. Its output goes to /tmp, which the power cut loses; an exit shows it.
 */
export async function startPaused(vm: Vm, args: string, point: string, timeoutSeconds = 240): Promise<Paused> {
  // `sh -c` writes its own pid, then execs ferry, whose wrapper execs node: that pid is the one SIGSTOP stops.
  await vm.mustRun(
    `rm -f /tmp/ferry.rc /tmp/ferry.pid; (sh -c 'echo $$ >/tmp/ferry.pid; export FERRY_PAUSE_AT=${point}; exec ferry ${args}' >/tmp/ferry.out 2>&1; echo $? >/tmp/ferry.rc) & true`,
  );
  const poll =
    `n=0; while [ $n -lt ${timeoutSeconds * 5} ]; do ` +
    `[ -e /tmp/ferry.rc ] && { echo "@@EXIT=$(cat /tmp/ferry.rc)@@"; cat /tmp/ferry.out; break; }; ` +
    `pid=$(cat /tmp/ferry.pid 2>/dev/null); [ -n "$pid" ] && grep -q 'stopped' /proc/$pid/status 2>/dev/null && { echo "@@PAUSED=$pid@@"; break; }; ` +
    `n=$((n+1)); sleep 0.2; done`;
  const { output } = await vm.run(poll, (timeoutSeconds + 30) * 1000);
  const paused = /@@PAUSED=(\d+)@@/.exec(output);
  if (paused !== null) return { paused: true, pid: Number(paused[1]) };
  const exited = /@@EXIT=(\d+)@@/.exec(output);
  if (exited !== null) return { paused: false, code: Number(exited[1]), output: output.slice(exited.index) };
  throw vm.failure(`ferry ${args} neither stopped at ${point} nor exited within ${timeoutSeconds} s`);
}

/** Cuts the power and powers on again; the boot must reach /sbin/init's marker (the driver's timeout says when not). */
export async function cutAndBoot(vm: Vm, timeoutMs?: number): Promise<{ boot: BootInfo; brokenBoots: number }> {
  await vm.powerCut();
  await vm.powerOn();
  const boot = await vm.waitForBoot(timeoutMs);
  return { boot, brokenBoots: brokenBootsIn(boot) };
}

/** How many times a broken rootfs's init died on the way to this boot (the bootloader's fallback counting them). */
export function brokenBootsIn(boot: BootInfo): number {
  return boot.console.split(BROKEN_INIT_MARKER).length - 1;
}

/** What the device says about itself once recovered. */
export interface DeviceView {
  /** The booted deployment's checksum from `ostree admin status`. */
  readonly ostreeBooted: string;
  /** `ferry status --json`, parsed. */
  readonly status: StatusJson;
  readonly fsckClean: boolean;
}

export interface StatusJson {
  readonly state: string;
  readonly booted: { readonly commit?: string; readonly target?: string | null; readonly error?: string };
  readonly current: { readonly name: string; readonly commit: string } | null;
  readonly pending: unknown;
  readonly inconsistent: unknown;
  readonly failedTargets: ReadonlyArray<{ readonly target: { readonly name: string } }>;
}

/** `ostree admin status`, `ferry status --json` and `ostree fsck` in the guest. */
export async function viewDevice(vm: Vm): Promise<DeviceView> {
  const booted = await guestBootedCommit(vm);
  if (booted === undefined) throw vm.failure('ostree admin status shows no booted deployment');
  const json = await vm.mustRun('ferry status --json');
  let status: StatusJson;
  try {
    status = JSON.parse(json.slice(json.indexOf('{'), json.lastIndexOf('}') + 1)) as StatusJson;
  } catch (error) {
    throw vm.failure(`ferry status --json does not parse (${(error as Error).message}):\n${json}`);
  }
  const fsck = await vm.run('ostree fsck >/tmp/fsck.out 2>&1 || { tail -5 /tmp/fsck.out; false; }', 300_000);
  return { ostreeBooted: booted, status, fsckClean: fsck.code === 0 };
}

/** One row of the power-cut table. */
export interface PowerCutRow {
  readonly point: string;
  readonly command: 'install' | 'run';
  /** Boots after the cut (until recovery settled) that never reached the init marker. */
  readonly failedBoots: number;
  /** Kernel panics of the broken target's init on the way (the bootloader's fallback counting them). */
  readonly brokenBoots: number;
  /** What the recovery `ferry run`s exited with ("paused" when the next cut came first). */
  readonly recovery: string;
  readonly finalTarget: string;
  readonly seconds: number;
}

export function formatPowerCutTable(rows: readonly PowerCutRow[]): string {
  const lines = [
    '| # | point cut | command | boots that failed | broken boots on the way | recovery run codes | final target | time (s) |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (row, index) =>
        `| ${index + 1} | ${row.point} | ${row.command} | ${row.failedBoots} | ${row.brokenBoots} | ${row.recovery} | ${row.finalTarget} | ${row.seconds.toFixed(1)} |`,
    ),
  ];
  return lines.join('\n');
}

/** A small seeded generator (mulberry32), so that a failing run's random moments can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
