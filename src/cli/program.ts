import { createRequire } from 'node:module';
import path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { FerryError } from '../errors.js';
import { OUTCOMES } from '../exit-codes.js';
import { exportBundle } from '../bundle/export.js';
import { loadDeviceConfig } from '../device/config.js';
import { openDevice } from '../device/device.js';
import { withDeviceLock } from '../device/lock.js';
import { installFromBundle } from '../lifecycle/install.js';
import { errorReport, type CommandReport } from '../lifecycle/report.js';
import { runPending } from '../lifecycle/run.js';
import { deviceStatus } from '../lifecycle/status.js';
import { addApp } from '../apps/add-app.js';
import { addTarget, parseAppOption } from '../repo/add-target.js';
import type { RestartPolicy } from '../tuf/target.js';
import { initFactoryRepo, openFactoryRepo } from '../repo/factory-repo.js';
import { buildImage, busyboxLayer } from '../apps/build-image.js';
import { isEmptyOrMissingDir } from '../util/atomic-file.js';
import { commitSimRootfs } from '../sim/rootfs.js';
import { createSimDevice, rebootSimDevice } from '../sim/sim-device.js';
import { emitReport, type Io } from './output.js';

const { version: VERSION } = createRequire(import.meta.url)('../../../package.json') as { version: string };

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

function wholeNumber(name: string, min: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) < min) {
      throw new FerryError('USAGE', `${name} must be a whole number, at least ${min} (got "${value}")`);
    }
    return Number(value);
  };
}

const positiveInteger = (name: string) => wholeNumber(name, 1);

interface DeviceCommandOptions {
  config?: string[];
  json?: boolean;
}

function exitCodeTable(commands: readonly string[]): string {
  const rows = Object.values(OUTCOMES)
    .filter((info) => (info.commands as readonly string[]).some((command) => commands.includes(command)))
    .sort((a, b) => a.exitCode - b.exitCode)
    .map((info) => `  ${String(info.exitCode).padStart(3)}  ${info.meaning}`);
  return `\nExit codes (and 1 for an unexpected error, 2 for a bad command line):\n${rows.join('\n')}\n`;
}

/**
 * Builds the command line. Each action only computes a CommandReport; printing it and choosing the exit code
 * happen once, in run(), and only the entry point calls process.exit.
 */
export function buildProgram(
  name: 'ferry' | 'aklite-offline',
  io: Io,
  setReport: (report: CommandReport, json: boolean) => void,
): Command {
  const program = new Command(name);
  program
    .description(
      name === 'ferry'
        ? 'move signed OSTree updates across an air gap: export bundles on a workstation, install them on devices'
        : 'aktualizr-lite offline compatible commands: install an update from a bundle, then run it after the reboot',
    )
    .version(VERSION)
    // `target add --version N` is the target version: the program's own --version counts only before a command.
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ writeOut: (text) => io.stdout(text), writeErr: (text) => io.stderr(text) })
    .showHelpAfterError('(see --help)');

  const deviceOptions = (command: Command): Command =>
    command
      .option(
        '-c, --config <file|dir>',
        'configuration file or directory (repeatable; default: the sota.toml locations aktualizr-lite reads)',
        collect,
      )
      .option('--json', 'print the result as one JSON object');

  const device = async (options: DeviceCommandOptions) => openDevice(await loadDeviceConfig(options.config ?? []));

  deviceOptions(
    program
      .command('install')
      .description('verify a bundle and stage its target; the device runs it after a reboot and `run`')
      .requiredOption(
        '--src-dir <path>',
        'the bundle: a directory with tuf/, ostree_repo/ and apps/, or a .tar or .zip of one',
      )
      .option('--target <name>', 'install this target from the bundle instead of the highest version')
      .option('--force', 'install even a lower version (downgrade)'),
  )
    .addHelpText('after', exitCodeTable(['install']))
    .action(async (options: DeviceCommandOptions & { srcDir: string; target?: string; force?: boolean }) => {
      const target = await device(options);
      const report = await withDeviceLock(target.paths.volatileDir, 'install', () =>
        installFromBundle(target, {
          srcDir: path.resolve(options.srcDir),
          targetName: options.target,
          force: options.force ?? false,
        }),
      );
      setReport(report, options.json ?? false);
    });

  deviceOptions(
    program
      .command('run')
      .description(
        'after the reboot (or engine restart): start the apps, watch them through the testing window, commit or roll back',
      )
      .option(
        '--no-wait',
        'start the apps and exit at once (105, state TESTING); a later run finishes the testing window',
      ),
  )
    .addHelpText('after', exitCodeTable(['run']))
    .action(async (options: DeviceCommandOptions & { wait: boolean }) => {
      const target = await device(options);
      const report = await withDeviceLock(target.paths.volatileDir, 'run', () =>
        runPending(target, { noWait: !options.wait }),
      );
      setReport(report, options.json ?? false);
    });

  if (name === 'aklite-offline') return program;

  deviceOptions(
    program.command('status').description('show the booted and pending targets, the update state and the last error'),
  ).action(async (options: DeviceCommandOptions) => {
    setReport(await deviceStatus(await device(options)), options.json ?? false);
  });

  const repo = program.command('repo').description('the factory repository on the workstation');
  repo
    .command('init <dir>')
    .description('create the four TUF roles (ed25519), 1.root.json, an archive OSTree repo and apps/')
    .addOption(
      new Option('--root-expires-in-days <n>', 'how long root.json stays valid')
        .default(365)
        .argParser(positiveInteger('--root-expires-in-days')),
    )
    .option('--factory <name>', 'the factory name in app uris (apps.ferry.local/<factory>/<app>)', 'factory')
    .action(async (dir: string, options: { rootExpiresInDays: number; factory: string }) => {
      await initFactoryRepo(path.resolve(dir), {
        rootExpiresInDays: options.rootExpiresInDays,
        factory: options.factory,
      });
      setReport({ outcome: 'OK', message: `created factory repository ${path.resolve(dir)}` }, false);
    });

  const target = program.command('target').description('targets of the factory repository');
  target
    .command('add')
    .description('record an OSTree target <name>-<version>; re-signs targets, snapshot and timestamp')
    .requiredOption('--repo <dir>', 'the factory repository')
    .requiredOption('--name <name>', 'target base name (the target is named <name>-<version>)')
    .requiredOption('--version <n>', 'target version, a decimal number')
    .requiredOption('--hardware-id <id>', 'hardware id the target is for (repeatable)', collect)
    .requiredOption('--tag <tag>', 'tag the target carries (repeatable)', collect)
    .option('--commit <sha>', 'the OSTree commit')
    .option('--ref <ref>', 'an OSTree ref that names the commit')
    .option('--ostree-repo <dir>', 'copy the commit from this OSTree repo into the factory repo')
    .option(
      '--app <app[@sha256:digest][=policy]>',
      'pin an app (repeatable; default version: the latest added)',
      collect,
    )
    .addOption(
      new Option('--restart-policy <policy>', 'restart policy of the --app given without =policy')
        .choices(['container', 'system'])
        .default('container'),
    )
    .action(
      async (options: {
        app?: string[];
        restartPolicy: RestartPolicy;
        repo: string;
        name: string;
        version: string;
        hardwareId: string[];
        tag: string[];
        commit?: string;
        ref?: string;
        ostreeRepo?: string;
      }) => {
        const result = await addTarget(await openFactoryRepo(path.resolve(options.repo)), {
          name: options.name,
          version: options.version,
          hardwareIds: options.hardwareId,
          tags: options.tag,
          commit: options.commit,
          ref: options.ref,
          ostreeRepo: options.ostreeRepo === undefined ? undefined : path.resolve(options.ostreeRepo),
          apps: (options.app ?? []).map((text) => ({ restartPolicy: options.restartPolicy, ...parseAppOption(text) })),
        });
        setReport(
          {
            outcome: 'OK',
            message: result.unchanged
              ? `target ${result.name} already recorded (commit ${result.commit})`
              : `added target ${result.name} (commit ${result.commit})`,
            data: result,
          },
          false,
        );
      },
    );

  const app = program.command('app').description('compose apps of the factory repository');
  app
    .command('add <app>')
    .description('store a compose app content-addressed: its project archive and its images, pinned by digest')
    .requiredOption('--repo <dir>', 'the factory repository')
    .requiredOption('--compose <dir>', 'the directory holding docker-compose.yml (and any files it uses)')
    .option(
      '--image <path>',
      "an image the compose file uses: an OCI layout directory or a 'docker save' archive (repeatable)",
      collect,
    )
    .addHelpText('after', exitCodeTable(['app']))
    .action(async (name: string, options: { repo: string; compose: string; image?: string[] }) => {
      const added = await addApp(await openFactoryRepo(path.resolve(options.repo)), {
        name,
        composeDir: path.resolve(options.compose),
        images: options.image ?? [],
      });
      setReport({ outcome: 'OK', message: `added app ${added.name}: ${added.uri}`, data: { ...added } }, false);
    });

  program
    .command('export <target> <dst>')
    .description('write a bundle for <target> into <dst>: tuf/ (re-signed, expiring in N days) and ostree_repo/')
    .requiredOption('--repo <dir>', 'the factory repository')
    .requiredOption('--tag <tag>', 'the tag the bundle is for; the target must carry it')
    .option('--prod', 'a production bundle (only production devices take it)')
    .addOption(
      new Option('--archive <kind>', 'write one file at <dst>: a tar or a zip of the bundle').choices(['tar', 'zip']),
    )
    .addOption(
      new Option('--expires-in-days <n>', 'days until the bundle metadata expires')
        .default(30)
        .argParser(positiveInteger('--expires-in-days')),
    )
    .addHelpText('after', exitCodeTable(['export']))
    .action(
      async (
        targetName: string,
        dst: string,
        options: { repo: string; tag: string; prod?: boolean; expiresInDays: number; archive?: 'tar' | 'zip' },
      ) => {
        const result = await exportBundle(await openFactoryRepo(path.resolve(options.repo)), {
          targetName,
          destination: path.resolve(dst),
          tag: options.tag,
          type: options.prod ? 'prod' : 'ci',
          expiresInDays: options.expiresInDays,
          archive: options.archive,
        });
        setReport(
          {
            outcome: 'OK',
            message: `exported ${result.target} to ${result.destination} (expires ${result.expires}); verified`,
            data: { ...result },
          },
          false,
        );
      },
    );

  const sim = program.command('sim').description('a simulated device, to try ferry without hardware');
  sim
    .command('create <device-dir>')
    .description('make a device: OSTree sysroot running <target>, U-Boot env file, cmdline file, trusted root, config')
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
        setReport(
          {
            outcome: 'OK',
            message: `created a simulated device in ${path.resolve(deviceDir)} running ${options.target}; config: ${config.sources.join(', ')}`,
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

  return program;
}

/** Parses argv, runs the command, prints the result; returns the exit code. */
export async function run(name: 'ferry' | 'aklite-offline', argv: readonly string[], io: Io): Promise<number> {
  let result: { report: CommandReport; json: boolean } | undefined;
  const program = buildProgram(name, io, (report, json) => {
    result = { report, json };
  });
  const wantsJson = argv.includes('--json');
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.exitCode === 0)
        return 0;
      return OUTCOMES.USAGE.exitCode;
    }
    return emitReport(io, name, errorReport(error), wantsJson);
  }
  if (result === undefined) {
    program.outputHelp();
    return OUTCOMES.USAGE.exitCode;
  }
  return emitReport(io, name, result.report, result.json);
}
