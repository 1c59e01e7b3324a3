import assert from 'node:assert/strict';
import path from 'node:path';
import { before, describe, test, type TestContext } from 'node:test';
import type { FactoryRepo } from '../../src/repo/factory-repo.js';
import { cli } from '../support/cli.js';
import { tempDir } from '../support/factory.js';
import { BOOTLIMIT, type Bootloader } from './support/disk-image.js';
import { guestBootEnv, guestBootedCommit, guestDeployments, guestFerry, guestMountStick } from './support/guest.js';
import {
  copyDisk,
  copyFactory,
  realbootImages,
  realbootSkipReason,
  serialLogFile,
  type RealbootImages,
} from './support/images.js';
import { BOOT_HOOK, BROKEN_INIT_MARKER, VM_TAG } from './support/rootfs.js';
import { buildExfatStick, buildFat32Stick } from './support/stick-image.js';
import { Vm, type BootInfo } from './support/vm.js';

/**
 * The update a technician makes, on a machine that really boots: a stick with v2 → `ferry install` (100) → a real
 * reboot through the real bootloader → `ferry run` (0) on v2; then a stick with v3, whose init dies → install (100)
 * → reboot → the kernel panics, the bootloader counts the boots and falls back to v2 → run (99), v3 remembered as
 * failed. Under GRUB the sticks are FAT32 and hot-plugged through the QEMU monitor; under U-Boot they are in from
 * power-on, v2's an exFAT stick written on the host through FUSE, v3's FAT32. The guest's own kernel mounts them.
 */
let images: RealbootImages;

before(async () => {
  if (realbootSkipReason() === false) images = await realbootImages();
});

interface Scenario {
  readonly bootloader: Bootloader;
  /** The filesystem of the stick that carries v2 (v3's is FAT32). */
  readonly v2Stick: 'vfat' | 'exfat';
  /** Hot-plugged through the QEMU monitor while the machine runs, or attached before power-on. */
  readonly hotplug: boolean;
}

const SCENARIOS: readonly Scenario[] = [
  { bootloader: 'grub', v2Stick: 'vfat', hotplug: true },
  { bootloader: 'uboot', v2Stick: 'exfat', hotplug: false },
];

/** A fallback takes BOOTLIMIT failed boots (each a kernel panic and a reset) and one more. */
const FALLBACK_TIMEOUT_MS = 360_000;
const INSTALL_TIMEOUT_MS = 300_000;

describe('an update from a stick on a machine that really boots', { skip: realbootSkipReason() }, () => {
  for (const scenario of SCENARIOS) {
    const { bootloader } = scenario;
    test(`${bootloader}: v2 from ${scenario.v2Stick === 'vfat' ? 'a FAT32' : 'an exFAT'} stick${scenario.hotplug ? ' (hot-plugged)' : ''} installs, reboots, runs; v3 whose init dies falls back to v2 and is remembered as failed`, async (t) => {
      const started = Date.now();
      const dir = await tempDir(`realboot-update-${bootloader}`);
      const factory = await copyFactory(images, dir);
      const { v1, v2, v3InitDies: v3 } = images.targets;
      const v2Stick =
        scenario.v2Stick === 'exfat'
          ? await buildExfatStick(256, (mountPoint) => exportBundle(factory, v2, mountPoint, v1))
          : await fat32Stick(factory, v2, v1, dir);
      const v3Stick = await fat32Stick(factory, v3, v2, dir);

      const logFile = await serialLogFile(`update-${bootloader}`);
      t.diagnostic(`serial console: ${logFile}`);
      const vm = await Vm.start({
        bootloader,
        disk: await copyDisk(images, bootloader, dir),
        ubootRom: images.ubootRom,
        sticks: scenario.hotplug ? [] : [v2Stick, v3Stick],
        logFile,
      });
      t.after(() => vm.kill());
      const first = await vm.waitForBoot();
      step(t, `${bootloader}: v1 booted`, first.seconds);
      assert.equal(first.version, 'v1');

      // v2: install from the stick, reboot, run. The hot-plugged stick goes through ferry's own stick hook, as udev
      // starts it on a device (ferry-stick@.service): it mounts the stick, installs, unmounts it and reboots.
      const v2Device = scenario.hotplug ? await insertStick(vm, v2Stick, 'stick2') : '/dev/vdb';
      let at = Date.now();
      if (scenario.hotplug) {
        const line = await vm.runUntilGuestReboots(
          `${BOOT_HOOK} stick ${v2Device}`,
          /ferry-boot: install exited (\d+) \(([A-Z_]+)\): ([^\r\n]*)/,
          INSTALL_TIMEOUT_MS,
        );
        step(t, `${bootloader}: the stick hook's install of v2`, (Date.now() - at) / 1000);
        t.diagnostic(line[0]);
        assert.equal(Number(line[1]), 100, line[0]);
        assert.match(line[3]!, /^reboot/, line[0]);
      } else {
        const installV2 = await installFrom(vm, v2Device, scenario.v2Stick);
        step(t, `${bootloader}: install of v2 from the stick`, (Date.now() - at) / 1000);
        assert.equal(installV2.code, 100, JSON.stringify(installV2.json));
        await vm.reboot();
      }
      const second = await vm.waitForBoot();
      step(t, `${bootloader}: reboot into v2`, second.seconds);
      assert.equal(second.version, 'v2');
      if (scenario.hotplug) await removeStick(vm, 'stick2', v2Device);
      assert.equal(await runAfterBoot(t, vm, second), 0);
      assert.equal(await guestBootedCommit(vm), images.commits[v2], 'ostree admin status: v2 is booted');
      const afterV2 = (await guestFerry(vm, 'status')).json;
      assert.equal(afterV2['state'], 'DONE');
      assert.equal(afterV2['current']?.name, v2);
      assert.deepEqual(afterV2['booted'], { commit: images.commits[v2], target: v2 });

      // v3: its init dies; the bootloader counts BOOTLIMIT failed boots and falls back to v2.
      const v3Device = scenario.hotplug ? await insertStick(vm, v3Stick, 'stick3') : '/dev/vdc';
      at = Date.now();
      const installV3 = await installFrom(vm, v3Device, 'vfat');
      step(t, `${bootloader}: install of v3 from the stick`, (Date.now() - at) / 1000);
      assert.equal(installV3.code, 100, JSON.stringify(installV3.json));
      if (scenario.hotplug) await removeStick(vm, 'stick3', v3Device);

      await vm.reboot();
      const fellBack = await vm.waitForBoot(FALLBACK_TIMEOUT_MS);
      step(t, `${bootloader}: ${BOOTLIMIT} failed boots of v3 and the fallback to v2`, fellBack.seconds);
      assert.equal(fellBack.version, 'v2');
      assert.equal(count(fellBack.console, BROKEN_INIT_MARKER), BOOTLIMIT, 'v3 was tried bootlimit times');
      assert.equal(count(fellBack.console, 'Kernel panic'), BOOTLIMIT, 'each try ended in a kernel panic');
      if (!images.bootHook) {
        const env = await guestBootEnv(vm, bootloader);
        assert.equal(env['rollback'], '1', `the bootloader says it fell back: ${JSON.stringify(env)}`);
      }

      assert.equal(await runAfterBoot(t, vm, fellBack), 99);
      assert.equal(await guestBootedCommit(vm), images.commits[v2], 'ostree admin status: v2 is booted');
      const afterV3 = (await guestFerry(vm, 'status')).json;
      assert.equal(afterV3['current']?.name, v2);
      assert.deepEqual(
        afterV3['failedTargets'].map((failed: { target: { name: string } }) => failed.target.name),
        [v3],
      );
      const env = await guestBootEnv(vm, bootloader);
      assert.equal(env['upgrade_available'], '0', `run ended the trial: ${JSON.stringify(env)}`);

      // With the trial over, nothing counts boots any more: v3 must not be what the bootloader boots next.
      const deployments = await guestDeployments(vm);
      assert.equal(deployments[0]?.commit, images.commits[v2], 'v2 is the default deployment again');
      assert.ok(!deployments.some((deployment) => deployment.commit === images.commits[v3]), 'v3 is undeployed');
      await vm.reboot();
      const again = await vm.waitForBoot();
      step(t, `${bootloader}: one more reboot, on v2`, again.seconds);
      assert.equal(again.version, 'v2');
      assert.equal(count(again.console, BROKEN_INIT_MARKER), 0);
      await vm.powerOff();
      step(t, `${bootloader}: the whole scenario`, (Date.now() - started) / 1000);
    });
  }
});

function step(t: TestContext, what: string, seconds: number): void {
  t.diagnostic(`${what}: ${seconds.toFixed(1)} s`);
}

function count(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

/** `ferry export` on the host, as a technician's workstation makes a stick (a delta from `base`). */
async function exportBundle(factory: FactoryRepo, target: string, destination: string, base: string): Promise<void> {
  const result = await cli('export', '--repo', factory.dir, target, destination, '--tag', VM_TAG, '--from', base);
  assert.equal(result.code, 0, result.stderr);
}

async function fat32Stick(factory: FactoryRepo, target: string, base: string, dir: string): Promise<string> {
  const bundle = path.join(dir, `bundle-${target}`);
  await exportBundle(factory, target, bundle, base);
  const image = path.join(dir, `stick-${target}.img`);
  await buildFat32Stick(bundle, image);
  return image;
}

/** Mounts the stick in the guest, installs from it, unmounts it. */
async function installFrom(vm: Vm, device: string, filesystem: 'vfat' | 'exfat') {
  await guestMountStick(vm, filesystem, device);
  const result = await guestFerry(vm, 'install --src-dir /mnt/stick', INSTALL_TIMEOUT_MS);
  await vm.mustRun('umount /mnt/stick');
  return result;
}

/** Plugs the stick in through the QEMU monitor and waits for the guest's kernel to show its disk. */
async function insertStick(vm: Vm, image: string, id: string): Promise<string> {
  await vm.hotplug(image, id);
  await vm.mustRun(waitForBlockDevice('/dev/vdb', true));
  return '/dev/vdb';
}

async function removeStick(vm: Vm, id: string, device: string): Promise<void> {
  await vm.unplug(id);
  await vm.mustRun(waitForBlockDevice(device, false));
}

/** A shell loop in the guest, bounded (10 s), that ends once `device` is (or is no longer) there. */
function waitForBlockDevice(device: string, present: boolean): string {
  const test = present ? `[ -b ${device} ]` : `[ ! -e ${device} ]`;
  return `i=0; until ${test} || [ $i -ge 100 ]; do sleep 0.1; i=$((i+1)); done; ${test}`;
}

/**
 * `ferry run` after a boot: the boot hook ran it already when the image has one (its console line gives the code);
 * otherwise it is run here, as the hook would.
 */
async function runAfterBoot(t: TestContext, vm: Vm, boot: BootInfo): Promise<number> {
  if (images.bootHook) {
    const line = /ferry-boot: run exited (\d+) \(([A-Z_]+)\)[^\n]*/.exec(boot.console);
    assert.ok(line, `the boot hook printed no run line:\n${boot.console.slice(-2000)}`);
    t.diagnostic(line[0]);
    return Number(line[1]);
  }
  const at = Date.now();
  const run = await guestFerry(vm, 'run');
  step(t, `ferry run (${run.code})`, (Date.now() - at) / 1000);
  return run.code;
}
