import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, describe, test, type TestContext } from 'node:test';
import { build } from 'esbuild';
import { cli } from '../support/cli.js';
import { tempDir } from '../support/factory.js';
import { BOOTLIMIT, type Bootloader } from './support/disk-image.js';
import { guestBootEnv, guestFerry, guestMountStick } from './support/guest.js';
import { copyDisk, copyFactory, realbootImages, serialLogFile, type RealbootImages } from './support/images.js';
import { NO_BOOT_HOOK_FILE, VM_TAG } from './support/rootfs.js';
import { buildFat32Stick } from './support/stick-image.js';
import { BOOT_TIMEOUT_MS, Vm } from './support/vm.js';

/**
 * A power cut while the bootloader env is written, on the real machine: U-Boot with its redundant env (two copies on
 * the FAT partition, boot/u-boot/boot.cmd) and GRUB with grubenv (boot/grub/grub.cfg). What each bootloader prints
 * before it boots (boot.cmd and grub.cfg echo a FERRY-BOOT line) shows which env it read and what it counted.
 *
 * The stick carries the bundle of v3 (whose init dies) and torn-env-writer, which writes the env through ferry's
 * own adapters in a loop.
 */
let images: RealbootImages;
let stick: string;

/** What a run of torn-env-writer sets on each write. */
const WRITE_VARIABLE = 'ferry_test_write';
const GRUBENV = '/boot/grub/grubenv';
const FW_ENV_CONFIG = '/etc/fw_env.config';
const UBOOT_COPIES = ['/boot/efi/uboot.env', '/boot/efi/uboot-redund.env'];

before(async () => {
  images = await realbootImages();
  const dir = await tempDir('realboot-torn-env');
  const factory = await copyFactory(images, dir);
  const content = path.join(dir, 'stick');
  const exported = await cli(
    'export',
    '--repo',
    factory.dir,
    images.targets.v3InitDies,
    content,
    '--tag',
    VM_TAG,
    '--from',
    images.targets.v1,
  );
  assert.equal(exported.code, 0, exported.stderr);
  await build({
    entryPoints: [fileURLToPath(new URL('torn-env-writer.js', import.meta.url))],
    outfile: path.join(content, 'torn-env-writer.mjs'),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // The CommonJS dependencies inside an ES module still need a require of their own.
    banner: {
      js: "import { createRequire as createBundleRequire } from 'node:module'; const require = createBundleRequire(import.meta.url);",
    },
    logLevel: 'warning',
  });
  stick = path.join(dir, 'stick.img');
  await buildFat32Stick(content, stick);
});

async function startVm(t: TestContext, bootloader: Bootloader, name: string): Promise<Vm> {
  const disk = await copyDisk(images, bootloader, await tempDir(`realboot-${name}`));
  const vm = await Vm.start({
    bootloader,
    disk,
    ubootRom: images.ubootRom,
    sticks: [stick],
    logFile: await serialLogFile(name),
  });
  t.after(() => vm.kill());
  return vm;
}

/** What the bootloader read and chose, from the FERRY-BOOT line its script prints. */
interface BootloaderSays {
  /** U-Boot: the env copy it used (0, 1, or none). */
  readonly copy: string | undefined;
  readonly vars: Record<string, string>;
  readonly entry: number;
  /** What the console printed before it since the last boot line. */
  readonly console: string;
}

async function bootloaderSays(vm: Vm, timeoutMs = BOOT_TIMEOUT_MS): Promise<BootloaderSays> {
  const { match, before } = await vm.expect(/FERRY-BOOT: ([^\r\n]*entry=\d)/, timeoutMs);
  const vars: Record<string, string> = {};
  for (const pair of match[1]!.split(' ')) {
    const eq = pair.indexOf('=');
    if (eq > 0) vars[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const { copy, entry, ...rest } = vars;
  return {
    copy: match[1]!.startsWith('env copy=') ? copy : undefined,
    vars: rest,
    entry: Number(entry),
    console: before,
  };
}

/** v1 running with the boot hook off (each `run` here is the test's), and v3, whose init dies, installed: 100. */
async function installBrokenTarget(vm: Vm): Promise<void> {
  const boot = await vm.waitForBoot();
  assert.equal(boot.version, 'v1');
  await vm.mustRun(`mkdir -p ${path.dirname(NO_BOOT_HOOK_FILE)} && touch ${NO_BOOT_HOOK_FILE}`);
  await guestMountStick(vm, 'vfat');
  const install = await guestFerry(vm, 'install --src-dir /mnt/stick', 600_000);
  assert.equal(install.code, 100, JSON.stringify(install.json));
  await vm.mustRun('umount /mnt/stick');
}

describe('a power cut while the bootloader env is written', () => {
  test('U-Boot: a torn write of one copy leaves the other; U-Boot boots from it, keeps counting, and falls back from a deployment whose init dies', async (t) => {
    const vm = await startVm(t, 'uboot', 'torn-env-uboot');
    await installBrokenTarget(vm);
    assert.equal((await guestBootEnv(vm, 'uboot'))['upgrade_available'], '1', 'the trial is armed');

    // The write that would end the trial, done on copies in /tmp to learn which copy fw_setenv writes and what; then
    // the cut: the crc, the flags byte and half of the variables reach that copy, the rest of it stays old.
    const next = '/tmp/next';
    await vm.mustRun(
      `mkdir -p ${next} && cp ${UBOOT_COPIES.join(' ')} ${next}/ && ` +
        `printf '${next}/uboot.env 0x0 0x4000\\n${next}/uboot-redund.env 0x0 0x4000\\n' > ${next}/fw_env.config && ` +
        `printf 'upgrade_available=0\\nbootcount=0\\nrollback=0\\n' | fw_setenv -c ${next}/fw_env.config -s -`,
    );
    const written = (
      await vm.mustRun(`for f in uboot.env uboot-redund.env; do cmp -s ${next}/$f /boot/efi/$f || echo $f; done`)
    )
      .trim()
      .split('\n');
    assert.equal(written.length, 1, `fw_setenv writes one copy: ${written.join(', ')}`);
    const copy = written[0]!;
    const intact = UBOOT_COPIES.findIndex((file) => path.basename(file) !== copy);
    await vm.mustRun(
      `n=$(fw_printenv -c ${next}/fw_env.config | wc -c) && ` +
        `dd if=${next}/${copy} of=/boot/efi/${copy} bs=$((5 + n / 2)) count=1 conv=notrunc,fsync`,
    );
    // The tear is real: the torn copy alone is no env (named twice, so that libubootenv reads its redundant format).
    const tornAlone = await vm.run(
      `printf '/boot/efi/${copy} 0x0 0x4000\\n/boot/efi/${copy} 0x0 0x4000\\n' > /tmp/torn.config && fw_printenv -c /tmp/torn.config`,
    );
    assert.notEqual(tornAlone.code, 0, 'the torn copy fails its crc');
    await vm.mustRun('sync');
    await vm.powerCut();

    await vm.powerOn();
    const counted: BootloaderSays[] = [];
    while (counted.length <= BOOTLIMIT) {
      const says = await bootloaderSays(vm);
      counted.push(says);
      if (says.entry === 2) break;
    }
    // U-Boot then writes each count into the other copy, with a newer flags byte: the copy it reads alternates.
    assert.equal(counted[0]!.copy, String(intact), 'the first boot after the cut reads the copy that was not torn');
    t.diagnostic(counted.map((says) => `bootcount=${says.vars['bootcount']} entry=${says.entry}`).join('; '));
    assert.deepEqual(
      counted.map((says) => says.vars['bootcount']),
      ['1', '2', '3', '4'],
      'each boot of the trial is counted, from where the env was before the cut',
    );
    assert.equal(counted.at(-1)!.entry, 2, 'past bootlimit U-Boot boots the rollback entry');
    const boot = await vm.waitForBoot();
    assert.equal(boot.version, 'v1');
    const env = await guestBootEnv(vm, 'uboot');
    assert.equal(env['rollback'], '1');

    const run = await guestFerry(vm, 'run', 600_000);
    assert.equal(run.code, 99, JSON.stringify(run.json));
    assert.equal((await guestBootEnv(vm, 'uboot'))['upgrade_available'], '0', 'run ended the trial');
    await vm.powerOff();
  });

  test('GRUB: grub-editenv alone truncates grubenv before it writes; a cut in between loses the trial and the broken deployment boots again and again', async (t) => {
    const vm = await startVm(t, 'grub', 'torn-env-grub-editenv');
    await installBrokenTarget(vm);
    assert.equal((await guestBootEnv(vm, 'grub'))['upgrade_available'], '1', 'the trial is armed');

    // What grub-editenv leaves when the power fails after its open(O_TRUNC) and before its write.
    await vm.mustRun(`: > ${GRUBENV} && sync`);
    await vm.powerCut();
    await vm.powerOn();
    const boots: BootloaderSays[] = [];
    for (let attempt = 0; attempt < BOOTLIMIT + 1; attempt++) {
      const says = await bootloaderSays(vm);
      boots.push(says);
      await vm.expect(/Kernel panic/, BOOT_TIMEOUT_MS);
    }
    t.diagnostic(boots.map((says) => JSON.stringify(says.vars)).join('; '));
    for (const says of boots) {
      assert.match(says.console, /invalid environment block/, 'GRUB rejected the empty grubenv');
      assert.equal(says.vars['upgrade_available'], '', 'load_env rejected the empty grubenv: no trial');
      assert.equal(says.entry, 0, 'the default entry, the deployment whose init dies');
    }
    await vm.powerCut();
  });

  for (const bootloader of ['uboot', 'grub'] as const) {
    test(`${bootloader}: power cuts at random moments while ferry writes the env over and over; every next boot reads a whole env, with every write that had returned`, async (t) => {
      const vm = await startVm(t, bootloader, `torn-env-loop-${bootloader}`);
      const target = bootloader === 'grub' ? GRUBENV : FW_ENV_CONFIG;
      let lastReturned = 0;
      const cuts: string[] = [];
      for (let cut = 0; cut <= 3; cut++) {
        if (cut > 0) await vm.powerOn();
        const says = await bootloaderSays(vm);
        if (bootloader === 'uboot') assert.match(says.copy ?? '', /^[01]$/, 'U-Boot found a valid copy');
        assert.equal(says.vars['bootlimit'], String(BOOTLIMIT), 'the bootloader read the env');
        await vm.waitForBoot();
        if (cut === 0) await vm.mustRun(`mkdir -p ${path.dirname(NO_BOOT_HOOK_FILE)} && touch ${NO_BOOT_HOOK_FILE}`);
        const env = await guestBootEnv(vm, bootloader);
        assert.equal(env['bootlimit'], String(BOOTLIMIT));
        assert.equal(env['upgrade_available'], '0');
        const found = Number(env[WRITE_VARIABLE] ?? '0');
        assert.ok(found >= lastReturned, `write ${lastReturned} had returned, the env holds write ${found}`);
        if (cut > 0) cuts.push(`write ${found} found, ${lastReturned} had returned`);
        if (cut === 3) break;

        await vm.mustRun('mkdir -p /mnt/stick && mount -t vfat -o ro /dev/vdb /mnt/stick');
        await vm.sendLine(`node /mnt/stick/torn-env-writer.mjs ${bootloader} ${target} 60`);
        // The writer numbers its writes from 1: what the next boot finds is this run's.
        lastReturned = Number((await vm.expect(/ENV-WRITE-DONE (\d+)/, BOOT_TIMEOUT_MS)).match[1]);
        await new Promise((resolve) => setTimeout(resolve, randomInt(0, 4000)));
        await vm.powerCut();
        lastReturned = await lastWriteReturned(vm, lastReturned);
      }
      t.diagnostic(cuts.join('; '));
      await vm.powerOff();
    });
  }
});

/** The last write the console says returned before the cut (QEMU has exited: its whole output is in). */
async function lastWriteReturned(vm: Vm, seen: number): Promise<number> {
  let last = seen;
  for (;;) {
    try {
      last = Number((await vm.expect(/ENV-WRITE-DONE (\d+)/, 1)).match[1]);
    } catch {
      return last;
    }
  }
}
