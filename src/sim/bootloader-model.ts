import { promises as fs } from 'node:fs';
import path from 'node:path';
import { FerryError } from '../errors.js';
import type { BootControl } from '../device/bootloader-env.js';
import { ostreeArgOf } from '../device/booted-deployment.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { readBootEntries, type BootEntry } from './boot-entries.js';
import { BOOT_FAILS_MARKER, BOOT_FIRMWARE_MARKER } from './rootfs.js';

export interface SimulatedBoot {
  readonly entry: BootEntry;
  readonly fellBack: boolean;
  /** Each boot attempt, including the ones the watchdog reset. */
  readonly attempts: ReadonlyArray<{ readonly entry: string; readonly bootcount: number; readonly booted: boolean }>;
}

/**
 * What the bootloader does at power-on, and nothing more. With `upgrade_available=1` it counts the boot (U-Boot's
 * `bootcount`, as bootcount_env does; GRUB's `boot_counter`, as a grub.cfg boot-counting script does); once the
 * count passes `bootlimit` it boots the rollback entry and sets `rollback=1` (U-Boot's altbootcmd). Otherwise it
 * boots the default entry. A rootfs that carries the boot-fails marker never reaches
 * userspace, so the watchdog resets the board and U-Boot runs again.
 *
 * The kernel command line of the chosen entry is written to the cmdline file, and the volatile directory (a tmpfs
 * on hardware) is emptied, as a real reboot would.
 */
export async function simulateReboot(options: {
  sysroot: string;
  boot: BootControl;
  cmdlineFile: string;
  volatileDir: string;
}): Promise<SimulatedBoot> {
  const attempts: Array<{ entry: string; bootcount: number; booted: boolean }> = [];
  await fs.rm(options.volatileDir, { recursive: true, force: true });
  await fs.mkdir(options.volatileDir, { recursive: true });

  // A boot firmware flashed during the last boot is confirmed by this one (LmP's bootupgrade_available flow).
  if ((await options.boot.flags()).bootUpgradeAvailable) await options.boot.setBootUpgradeAvailable(false);

  const maxAttempts = 16;
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    const flags = await options.boot.flags();
    const bootcount = flags.upgradeAvailable ? await options.boot.countBoot() : flags.bootcount;
    const entries = await readBootEntries(options.sysroot);
    const fallBack = flags.upgradeAvailable && bootcount > flags.bootlimit;
    const entry = fallBack ? entries[1] : entries[0];
    if (entry === undefined) {
      throw new FerryError(
        'SIM_DEVICE_BRICKED',
        fallBack ? 'the bootloader fell back, but there is no rollback entry to boot' : 'no boot entry to boot',
      );
    }
    if (fallBack && !flags.rolledBack) await options.boot.markFellBack();

    const booted = !(await bootFails(options.sysroot, entry));
    attempts.push({ entry: entry.title, bootcount, booted });
    if (booted) {
      await writeFileAtomic(
        options.cmdlineFile,
        `console=ttyS0,115200 root=/dev/mmcblk0p2 rootwait ${entry.options}\n`,
      );
      await flashBootFirmware(options.sysroot, entry, options.boot);
      return { entry, fellBack: fallBack, attempts };
    }
  }
  throw new FerryError(
    'SIM_DEVICE_BRICKED',
    `no deployment booted in ${maxAttempts} attempts (${attempts.map((a) => a.entry).join(', ')})`,
  );
}

/** The sim's record of the boot firmware version on the board, kept in the env as a real one keeps its version. */
const FIRMWARE_VARIABLE = 'ferry_sim_boot_firmware';

/** A deployment that ships another boot firmware flashes it while it boots: one more reboot confirms it. */
async function flashBootFirmware(sysroot: string, entry: BootEntry, boot: BootControl): Promise<void> {
  const ostreeArg = ostreeArgOf(entry.options);
  if (ostreeArg === undefined) return;
  const deployment = await fs.realpath(path.join(sysroot, ostreeArg));
  const shipped = (await fs.readFile(path.join(deployment, BOOT_FIRMWARE_MARKER), 'utf8').catch(() => '')).trim();
  if (shipped === '') return;
  const installed = (await boot.env.read())[FIRMWARE_VARIABLE];
  if (installed === shipped) return;
  await boot.env.update({ [FIRMWARE_VARIABLE]: shipped });
  await boot.setBootUpgradeAvailable(true);
}

async function bootFails(sysroot: string, entry: BootEntry): Promise<boolean> {
  const ostreeArg = ostreeArgOf(entry.options);
  if (ostreeArg === undefined) return true;
  const deployment = await fs.realpath(path.join(sysroot, ostreeArg));
  return fs.access(path.join(deployment, BOOT_FAILS_MARKER)).then(
    () => true,
    () => false,
  );
}
