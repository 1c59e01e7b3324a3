import path from 'node:path';
import { Option, type Command } from 'commander';
import { buildImage, busyboxLayer } from '../../apps/workstation/build-image.js';
import { loadDeviceKey } from '../../device/device-key.js';
import { devicePaths } from '../../device/paths.js';
import { FerryError } from '../../errors.js';
import { openFactoryRepo } from '../../repo/factory-repo.js';
import { commitSimRootfs } from '../../sim/rootfs.js';
import { createSimDevice, rebootSimDevice } from '../../sim/sim-device.js';
import { isEmptyOrMissingDir } from '../../util/atomic-file.js';
import type { CommandContext } from '../command-context.js';
import { collect, positiveInteger, wholeNumber } from '../shared-options.js';

/** sim: a simulated device and its parts, to try ferry without hardware. */
export function registerSimCommand(program: Command, { setReport }: CommandContext): void {
  const sim = program.command('sim').description('a simulated device, to try ferry without hardware');
  sim
    .command('create <device-dir>')
    .description(
      'make a device: OSTree sysroot running <target>, bootloader env (a redundant U-Boot env, or grubenv), cmdline file, trusted root, config',
    )
    .requiredOption('--repo <dir>', 'the factory repository')
    .requiredOption('--target <name>', 'the target the device runs at first')
    .option('--hardware-id <id>', "the device's hardware id (default: the target's first)")
    .option('--tag <tag>', "a tag the device follows (repeatable; default: the target's tags)", collect)
    .option('--prod', 'a production device (takes only production bundles)')
    .addOption(
      new Option('--bootloader <kind>', 'the bootloader the device simulates')
        .choices(['uboot', 'grub'])
        .default('uboot'),
    )
    .option(
      '--docker-host <url>',
      "the device's container engine, e.g. unix:///run/ferry-sim/docker.sock (needed for apps)",
    )
    .addOption(
      new Option('--testing-window-seconds <n>', 'how long every app must keep running before run commits an update')
        .default(120)
        .argParser(wholeNumber('--testing-window-seconds', 0)),
    )
    .addOption(
      new Option('--bootlimit <n>', 'boots U-Boot tries a new rootfs before it falls back')
        .default(3)
        .argParser(positiveInteger('--bootlimit')),
    )
    .action(
      async (
        deviceDir: string,
        options: {
          repo: string;
          target: string;
          hardwareId?: string;
          tag?: string[];
          prod?: boolean;
          bootlimit: number;
          dockerHost?: string;
          testingWindowSeconds: number;
          bootloader: 'uboot' | 'grub';
        },
      ) => {
        const config = await createSimDevice(deviceDir, await openFactoryRepo(path.resolve(options.repo)), {
          target: options.target,
          hardwareId: options.hardwareId,
          tags: options.tag,
          bootlimit: options.bootlimit,
          production: options.prod ?? false,
          dockerHost: options.dockerHost,
          testingWindowSeconds: options.testingWindowSeconds,
          bootloader: options.bootloader,
        });
        const key = await loadDeviceKey(devicePaths(config));
        setReport(
          {
            outcome: 'OK',
            message: `created a simulated device in ${path.resolve(deviceDir)} running ${options.target}; device id ${key?.id ?? 'unknown'} (its key registered in the repository); config: ${config.sources.join(', ')}`,
            data: { deviceId: key?.id ?? null },
          },
          false,
        );
      },
    );
  sim
    .command('reboot <device-dir>')
    .description('reboot the simulated device the way U-Boot would (boot counting, fallback, watchdog)')
    .action(async (deviceDir: string) => {
      const boot = await rebootSimDevice(deviceDir);
      const tries = boot.attempts
        .map((attempt) => `${attempt.entry}${attempt.booted ? '' : ' (did not boot)'}`)
        .join(' -> ');
      const fallback = boot.fellBack ? '; the bootloader fell back to the rollback entry' : '';
      setReport(
        { outcome: 'OK', message: `boot attempts: ${tries}; booted ${boot.entry.title}${fallback}`, data: { boot } },
        false,
      );
    });
  sim
    .command('rootfs')
    .description('commit a small rootfs (busybox, kernel stub, os-release) to an OSTree repo, for demos and tests')
    .requiredOption('--ostree-repo <dir>', 'the OSTree repo (created in archive mode if missing)')
    .requiredOption('--branch <ref>', 'the branch to commit to')
    .requiredOption('--version <n>', 'the version written into os-release')
    .option('--boot-fails', 'mark the rootfs so that it never boots in the simulator')
    .option(
      '--boot-firmware <version>',
      'ship a boot firmware of this version: booting it sets bootupgrade_available=1',
    )
    .action(
      async (options: {
        ostreeRepo: string;
        branch: string;
        version: string;
        bootFails?: boolean;
        bootFirmware?: string;
      }) => {
        const commit = await commitSimRootfs({
          repo: path.resolve(options.ostreeRepo),
          branch: options.branch,
          version: options.version,
          bootFails: options.bootFails ?? false,
          bootFirmware: options.bootFirmware,
        });
        setReport({ outcome: 'OK', message: commit, data: { commit } }, false);
      },
    );

  sim
    .command('image')
    .description('build a small OCI image (busybox-static plus a version file) without a container engine')
    .requiredOption('--out <dir>', 'the OCI layout directory to write (must not exist yet)')
    .requiredOption(
      '--ref <ref>',
      'the full image reference written into index.json, e.g. ferry.local/demo/heartbeat:1',
    )
    .option('--version-text <text>', 'written to /etc/image-version, so that two versions differ', '1')
    .action(async (options: { out: string; ref: string; versionText: string }) => {
      const out = path.resolve(options.out);
      if (!(await isEmptyOrMissingDir(out))) throw new FerryError('DESTINATION_NOT_EMPTY', `${out} is not empty`);
      const manifest = await buildImage({
        ref: options.ref,
        outDir: out,
        cmd: ['/bin/sh'],
        layers: [
          busyboxLayer(),
          [
            { type: 'directory', name: 'etc' },
            { type: 'file', name: 'etc/image-version', content: `${options.versionText}\n` },
          ],
        ],
      });
      setReport(
        { outcome: 'OK', message: `built ${options.ref} (${manifest.digest}) in ${out}`, data: { manifest } },
        false,
      );
    });
}
