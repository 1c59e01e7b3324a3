import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { tempDir } from '../support/factory.js';
import { copyDisk, realbootImages, realbootSkipReason, serialLogFile, type RealbootImages } from './support/images.js';
import {
  brokenBootsIn,
  buildPowerCutStick,
  cutAndBoot,
  formatPowerCutTable,
  seededRandom,
  SETTLED_CODES,
  startPaused,
  STICK_MOUNT,
  viewDevice,
  type PowerCutRow,
  type PowerCutStick,
} from './support/power-cut.js';
import { guestDisableBootHook } from './support/guest.js';
import { Vm } from './support/vm.js';

/**
 * Power cuts on a machine that really boots (U-Boot, the real kernel, OSTree's initramfs): ferry is stopped at one of
 * its fault points, or cut at a random moment of a long `ostree pull-local`, and QEMU is killed (no shutdown, nothing
 * flushed). After the power is back the README's recovery runs ("If the power is cut": `ferry run`, act on its code,
 * install again if it says so). Every boot must reach the init marker; the device must end on the old or the new
 * target, as `ostree admin status` and `ferry status --json` both say, with a clean `ostree fsck`; and the update
 * must still go through. Cuts are chained on one disk where the state after recovery allows it.
 *
 * FERRY_POWER_CUT_SEED replays the random moments of a run (the seed is printed).
 */

const seed = Number(process.env['FERRY_POWER_CUT_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
const random = seededRandom(seed);

/** A cut at a random moment of the pull: this long after the pull began (the pull of the payload takes longer). */
const PULL_CUT_MIN_S = 0.8;
const PULL_CUT_SPAN_S = 2.2;

const JOURNAL = '/var/sota/ferry/journal';

/** A boot that falls back takes BOOTLIMIT kernel panics and resets first. */
const FALLBACK_TIMEOUT_MS = 360_000;

/** The stick both tests install from, built once. */
let stickBuilt: Promise<PowerCutStick> | undefined;
const powerCutStick = (images: RealbootImages): Promise<PowerCutStick> =>
  (stickBuilt ??= tempDir('realboot-power-stick').then((dir) => buildPowerCutStick(images, dir)));

test(
  'power cuts at ferry fault points and inside a long pull: every boot comes up, on the old or the new target',
  { timeout: 20 * 60_000, skip: realbootSkipReason() },
  async (t) => {
    const images = await realbootImages();
    const dir = await tempDir('realboot-power');
    const stick = await powerCutStick(images);
    const disk = await copyDisk(images, 'uboot', dir);
    const logFile = await serialLogFile('power-cut-uboot');
    t.diagnostic(`seed ${seed} (FERRY_POWER_CUT_SEED=${seed} replays it); serial console: ${logFile}`);
    const vm = await Vm.start({ bootloader: 'uboot', disk, ubootRom: images.ubootRom, sticks: [stick.image], logFile });
    after(() => vm.kill());

    const v1 = images.targets.v1;
    const { long, broken } = stick;
    const rows: PowerCutRow[] = [];
    let bootsTotal = 0;
    let bootsFailed = 0;
    const started = Date.now();

    const boot = async (how: () => Promise<void>) => {
      bootsTotal++;
      try {
        await how();
      } catch (error) {
        bootsFailed++;
        throw error;
      }
      await vm.mustRun(`mkdir -p ${STICK_MOUNT} && mount -t vfat -o ro /dev/vdb ${STICK_MOUNT}`);
    };
    const cut = async (): Promise<{ version: string; brokenBoots: number }> => {
      let result: Awaited<ReturnType<typeof cutAndBoot>> | undefined;
      await boot(async () => {
        result = await cutAndBoot(vm, FALLBACK_TIMEOUT_MS);
      });
      return { version: result!.boot.version, brokenBoots: result!.brokenBoots };
    };
    const reboot = async (): Promise<number> => {
      let brokenBoots = 0;
      await boot(async () => {
        await vm.reboot();
        brokenBoots = brokenBootsIn(await vm.waitForBoot(FALLBACK_TIMEOUT_MS));
      });
      return brokenBoots;
    };

    /** The README's recovery: `ferry run` after every boot; 100 reboot and run again; 105 run again; 0, 32, 99 settle. */
    const recover = async (): Promise<{ codes: number[]; brokenBoots: number }> => {
      const codes: number[] = [];
      let brokenBoots = 0;
      for (let round = 0; round < 6; round++) {
        const { code, output } = await vm.run('ferry run', 300_000);
        codes.push(code);
        if (SETTLED_CODES.includes(code)) return { codes, brokenBoots };
        if (code === 100) brokenBoots += await reboot();
        else if (code !== 105) throw vm.failure(`ferry run exited ${code} during the recovery:\n${output}`);
      }
      throw vm.failure(`the recovery did not settle: ferry run exited ${codes.join(', ')}`);
    };

    /** Old or new, never neither: both views of the booted deployment agree, the repo is whole, nothing pending. */
    /** A target as the table shows it: the one the update started from, or the one it went to. */
    const side = (name: string, old: string) => `${name} (${name === old ? 'old' : 'new'})`;

    const assertSound = async (allowed: readonly string[], where: string): Promise<string> => {
      const view = await viewDevice(vm);
      const { status } = view;
      assert.ok(view.fsckClean, `${where}: ostree fsck is clean`);
      assert.equal(
        status.booted.commit,
        view.ostreeBooted,
        `${where}: ferry and ostree agree on the booted deployment`,
      );
      assert.equal(status.pending, null, `${where}: nothing is pending after the recovery`);
      assert.equal(status.inconsistent, null, `${where}: the device is not INCONSISTENT`);
      const current = status.current?.name ?? '(none)';
      assert.ok(allowed.includes(current), `${where}: the device runs "${current}", not one of ${allowed.join(', ')}`);
      assert.equal(status.booted.target, current, `${where}: the booted rootfs is the current target`);
      return current;
    };

    /** The README's "install again" after a 32: install, and reboot on its 100. */
    const installAgain = async (target: string): Promise<number> => {
      const again = await vm.run(`ferry install --src-dir ${STICK_MOUNT} --target ${target}`, 300_000);
      assert.equal(again.code, 100, `install ${target} again:\n${again.output}`);
      return reboot();
    };

    const install = (target: string) => `install --src-dir ${STICK_MOUNT} --target ${target}`;

    /**
     * One cut: ferry started with FERRY_PAUSE_AT=point, stopped there, the power cut, the machine booted again. Returns
     * false when the command ended before it reached the point (then nothing was cut: the caller says what it means).
     */
    const cutAt = async (
      args: string,
      point: string,
    ): Promise<{ reached: boolean; code?: number; version?: string; brokenBoots: number }> => {
      const paused = await startPaused(vm, args, point);
      if (!paused.paused) return { reached: false, code: paused.code, brokenBoots: 0 };
      return { reached: true, ...(await cut()) };
    };

    try {
      await boot(async () => {
        const first = await vm.waitForBoot();
        assert.equal(first.version, 'v1');
      });
      // The boot hook would run `ferry run` at each boot; here every run is typed, to stop it at its fault points.
      await guestDisableBootHook(vm);

      // 1. Random moments inside the pull of a long rootfs: each cut leaves a half-written OSTree staging directory.
      for (let index = 0; index < 3; index++) {
        const linkStarted = Date.now();
        const delay = PULL_CUT_MIN_S + random() * PULL_CUT_SPAN_S;
        const paused = await startPaused(vm, install(long), 'install.rootfs-pull');
        assert.ok(paused.paused, `install never reached its pull: ${!paused.paused ? paused.output : ''}`);
        await vm.mustRun(`kill -CONT ${paused.pid}`);
        await new Promise((resolve) => setTimeout(resolve, delay * 1000));
        const cutResult = await cut();
        const last = await vm.mustRun(`tail -n 1 ${JOURNAL}`);
        const inside = /"event":"intent","step":"install.rootfs-pull"/.test(last);
        assert.ok(
          inside,
          `the cut ${delay.toFixed(2)} s into the pull came after it (seed ${seed}); the journal ends:\n${last}`,
        );
        const recovery = await recover();
        const final = await assertSound([v1, long], `random cut ${index + 1}`);
        rows.push({
          point: `random, ${delay.toFixed(2)} s into ostree pull-local`,
          command: 'install',
          failedBoots: 0,
          brokenBoots: cutResult.brokenBoots + recovery.brokenBoots,
          recovery: recovery.codes.join(' → '),
          finalTarget: side(final, v1),
          seconds: (Date.now() - linkStarted) / 1000,
        });
      }

      // 2. install's fault points up to the deployment: the recovery undoes the install (32), the device stays on v1.
      for (const point of [
        'install.rootfs-pull:done',
        'install.pending-record:done',
        'install.reboot-sentinel:done',
        'install.boot-trial-start:done',
        'install.rootfs-deploy',
      ]) {
        const linkStarted = Date.now();
        const result = await cutAt(install(long), point);
        assert.ok(result.reached, `install ended (${result.code}) before ${point}`);
        const recovery = await recover();
        const final = await assertSound([v1, long], point);
        rows.push({
          point,
          command: 'install',
          failedBoots: 0,
          brokenBoots: result.brokenBoots + recovery.brokenBoots,
          recovery: recovery.codes.join(' → '),
          finalTarget: side(final, v1),
          seconds: (Date.now() - linkStarted) / 1000,
        });
      }

      // 3. The install cut once the deployment is made, then the run that completes it cut twice on the way.
      const chain: Array<{ command: 'install' | 'run'; args: string; point: string }> = [
        { command: 'install', args: install(long), point: 'install.pending-staged' },
        { command: 'run', args: 'run', point: 'run.boot-trial-end' },
        { command: 'run', args: 'run', point: 'run.commit-record' },
      ];
      assert.equal(await playChain(chain, long, [v1, long]), long, 'the update to the long target went through');

      // 4. A target whose init dies, cut once deployed: the bootloader falls back; the run that rolls back is cut too.
      const afterBroken = await playChain(
        [
          { command: 'install', args: install(broken), point: 'install.rootfs-deploy:done' },
          { command: 'run', args: 'run', point: 'run.fallback-bootcount-reset' },
          { command: 'run', args: 'run', point: 'run.fallback-undeploy:done' },
          { command: 'run', args: 'run', point: 'run.fallback-trial-end' },
        ],
        broken,
        [long],
      );
      assert.equal(afterBroken, long, 'the broken target is rolled back');
      const end = await viewDevice(vm);
      assert.ok(
        end.status.failedTargets.some((failed) => failed.target.name === broken),
        `${broken} is remembered as failed: ${JSON.stringify(end.status.failedTargets)}`,
      );
      const staging = await vm.run('du -sk /sysroot/ostree/repo/tmp | cut -f1');
      t.diagnostic(`OSTree's repo/tmp after the cuts: ${staging.output.trim()} KiB`);
    } finally {
      t.diagnostic(
        `power-cut table (seed ${seed}; ${bootsTotal} boots, ${bootsFailed} failed; ${((Date.now() - started) / 1000).toFixed(0)} s in all):\n${formatPowerCutTable(rows)}`,
      );
    }
    assert.equal(bootsFailed, 0, 'every boot reached the init marker');
    assert.ok(rows.length >= 13, `${rows.length} power cuts`);

    /**
     * Cuts chained on one update: each command after the first is the recovery `ferry run` of the cut before it, stopped
     * at the next point. When a cut took the state another way and that run undoes the install instead (32, before its
     * point), the README says to install again: the install is made whole, the machine rebooted, and the chain goes on.
     * Once the last point is cut, the recovery settles and the device must be sound.
     */
    async function playChain(
      links: ReadonlyArray<{ command: 'install' | 'run'; args: string; point: string }>,
      target: string,
      allowed: readonly string[],
    ): Promise<string> {
      const cuts: Array<Omit<PowerCutRow, 'recovery' | 'finalTarget'>> = [];
      const notes: string[] = [];
      for (const [index, link] of links.entries()) {
        let linkStarted = Date.now();
        let result = await cutAt(link.args, link.point);
        let extraBroken = 0;
        if (!result.reached) {
          // Only the cut install may be undone (what it wrote did not survive the cut); a run cut later must
          // finish what it started.
          assert.equal(index, 1, `${link.command} ended (${result.code}) before ${link.point}`);
          assert.equal(result.code, 32, `the recovery run exited ${result.code} before ${link.point}`);
          notes.push(`run → 32 before ${link.point}, installed again`);
          extraBroken = await installAgain(target);
          linkStarted = Date.now();
          result = await cutAt(link.args, link.point);
          assert.ok(result.reached, `run ended (${result.code}) before ${link.point}, also after installing again`);
        }
        cuts.push({
          point: link.point,
          command: link.command,
          failedBoots: 0,
          brokenBoots: result.brokenBoots + extraBroken,
          seconds: (Date.now() - linkStarted) / 1000,
        });
      }
      const settleStarted = Date.now();
      const settled = await recover();
      const final = await assertSound(allowed, links.map((link) => link.point).join(' then '));
      cuts.forEach((row, index) => {
        const last = index === cuts.length - 1;
        rows.push({
          ...row,
          recovery: last ? [...notes, settled.codes.join(' → ')].join('; ') : 'its run cut at the next point',
          finalTarget: side(final, allowed[0]!),
          brokenBoots: row.brokenBoots + (last ? settled.brokenBoots : 0),
          seconds: row.seconds + (last ? (Date.now() - settleStarted) / 1000 : 0),
        });
      });
      return final;
    }
  },
);

test(
  'grub: the power cut just after the deployment (OSTree swapped the loader on /boot) boots the new target, and run completes the update',
  { timeout: 10 * 60_000, skip: realbootSkipReason() },
  async (t) => {
    const images = await realbootImages();
    const stick = await powerCutStick(images);
    const disk = await copyDisk(images, 'grub', await tempDir('realboot-power-grub'));
    const logFile = await serialLogFile('power-cut-grub');
    const vm = await Vm.start({ bootloader: 'grub', disk, ubootRom: images.ubootRom, sticks: [stick.image], logFile });
    t.after(() => vm.kill());
    const started = Date.now();
    assert.equal((await vm.waitForBoot()).version, 'v1');
    await guestDisableBootHook(vm);
    await vm.mustRun(`mkdir -p ${STICK_MOUNT} && mount -t vfat -o ro /dev/vdb ${STICK_MOUNT}`);

    const paused = await startPaused(
      vm,
      `install --src-dir ${STICK_MOUNT} --target ${stick.long}`,
      'install.pending-staged',
    );
    assert.ok(paused.paused, `install ended before install.pending-staged: ${!paused.paused ? paused.output : ''}`);
    // GRUB reads /boot without replaying its journal: it boots what is on disk, which must be what Linux wrote.
    const { boot } = await cutAndBoot(vm);
    assert.equal(boot.version, 'v4', 'the deployment made before the cut boots');
    const run = await vm.run('ferry run', 300_000);
    assert.equal(run.code, 0, run.output);
    const view = await viewDevice(vm);
    assert.ok(view.fsckClean, 'ostree fsck is clean');
    assert.equal(view.status.booted.commit, view.ostreeBooted, 'ferry and ostree agree on the booted deployment');
    assert.equal(view.status.current?.name, stick.long);
    assert.equal(view.status.pending, null);
    t.diagnostic(
      `grub: cut after the deployment, booted ${boot.version}, run 0, in ${((Date.now() - started) / 1000).toFixed(0)} s`,
    );
  },
);
