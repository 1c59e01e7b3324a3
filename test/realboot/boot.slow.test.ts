import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { tempDir } from '../support/factory.js';
import { BOOTLOADERS } from './support/disk-image.js';
import { guestBootedCommit, guestFerry } from './support/guest.js';
import { copyDisk, realbootImages, realbootSkipReason, serialLogFile, type RealbootImages } from './support/images.js';
import { VM_OS } from './support/rootfs.js';
import { Vm } from './support/vm.js';

/**
 * The smoke test of the real-boot lane: each disk, as built, boots under its real bootloader (GRUB from SeaBIOS,
 * U-Boot as the firmware) into OSTree's deployment of target v1, and ferry in the guest reads that machine.
 */
let images: RealbootImages;

before(async () => {
  if (realbootSkipReason() === false) images = await realbootImages();
});

describe('a real boot', { skip: realbootSkipReason() }, () => {
  for (const bootloader of BOOTLOADERS) {
    test(`${bootloader}: the disk boots OSTree's deployment of v1 and ferry status names v1`, async (t) => {
      if (bootloader === BOOTLOADERS[0] && images.buildSeconds > 0)
        t.diagnostic(`images built in ${images.buildSeconds.toFixed(0)} s`);
      const disk = await copyDisk(images, bootloader, await tempDir(`realboot-${bootloader}`));
      const logFile = await serialLogFile(`boot-${bootloader}`);
      t.diagnostic(`serial console: ${logFile}`);
      const vm = await Vm.start({ bootloader, disk, ubootRom: images.ubootRom, logFile });
      t.after(() => vm.kill());

      const boot = await vm.waitForBoot();
      t.diagnostic(`${bootloader}: power-on to shell in ${boot.seconds.toFixed(1)} s`);
      assert.equal(boot.version, 'v1');
      assert.match(boot.deployment, new RegExp(`^/ostree/boot\\.[01]/${VM_OS}/[0-9a-f]{64}/0$`));
      await vm.mustRun('test -e /run/ostree-booted');

      const commit = images.commits[images.targets.v1]!;
      assert.equal(await guestBootedCommit(vm), commit, 'ostree admin status shows v1 booted');

      const status = await guestFerry(vm, 'status');
      assert.equal(status.code, 0);
      assert.equal(status.json['state'], 'DONE');
      assert.equal(status.json['current']?.name, images.targets.v1);
      assert.deepEqual(status.json['booted'], { commit, target: images.targets.v1 });
      await vm.powerOff();
    });
  }
});
