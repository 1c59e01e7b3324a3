import { promises as fs } from 'node:fs';
import path from 'node:path';
import { FerryError } from '../errors.js';
import { bootControlFor, GRUB_VARIABLES, UBOOT_VARIABLES, type BootVariables } from '../device/bootloader-env.js';
import { loadDeviceConfig, type DeviceConfig } from '../device/config.js';
import { provisionDecryptionKey } from '../device/decryption-keys.js';
import { writeDeviceRequest } from '../device/device-certificate.js';
import { provisionDeviceKey } from '../device/device-key.js';
import { devicePaths, type DevicePaths } from '../device/paths.js';
import { StatusFile, emptyStatus } from '../device/status-file.js';
import { Sysroot } from '../ostree/sysroot.js';
import type { FactoryRepo } from '../repo/factory-repo.js';
import { appsOutOfSync, startApps, switchApps } from '../apps/device/app-runner.js';
import { verifyApps } from '../apps/format/verify-apps.js';
import { openDevice } from '../device/device.js';
import { refOf } from '../lifecycle/plan.js';
import { registerDeviceKey } from '../reports/device-registry.js';
import { targetFromMetadata, type AppPin, type Target } from '../tuf/target.js';
import { isEmptyOrMissingDir, pathExists } from '../util/atomic-file.js';
import { runTool } from '../util/tool.js';
import { simulateReboot, type SimulatedBoot } from './bootloader-model.js';
import { saveFoundriesTrust } from '../device/foundries-trust-file.js';

/**
 * A simulated device is a directory that holds what a board would:
 *   sysroot/                 a real OSTree sysroot (ostree admin init-fs / os-init / deploy)
 *   boot-env/uboot.env       a real, redundant U-Boot env (mkenvimage -r): two copies, used through
 *   boot-env/uboot-redund.env  fw_setenv/fw_printenv (GRUB: boot-env/grubenv, through grub-editenv)
 *   etc/fw_env.config        points the env tools at the two copies
 *   etc/sota/conf.d/         the device configuration
 *   proc/cmdline             the booted kernel's command line
 *   run/aktualizr-session/   the volatile directory (emptied by every simulated reboot)
 *   var/sota/                storage: trusted metadata, the status record and the device key
 */
export interface SimDeviceOptions {
  readonly target: string;
  readonly hardwareId?: string | undefined;
  readonly tags?: readonly string[] | undefined;
  readonly os?: string;
  readonly bootlimit?: number;
  readonly production?: boolean;
  /** The container engine of the device (unix://…); required when the target has apps. */
  readonly dockerHost?: string | undefined;
  readonly testingWindowSeconds?: number;
  readonly bootloader?: 'uboot' | 'grub';
}

export function simConfigDir(deviceDir: string): string {
  return path.join(deviceDir, 'etc', 'sota', 'conf.d');
}

export async function createSimDevice(
  deviceDir: string,
  repo: FactoryRepo,
  options: SimDeviceOptions,
): Promise<DeviceConfig> {
  const root = path.resolve(deviceDir);
  if (!(await isEmptyOrMissingDir(root))) throw new FerryError('DESTINATION_NOT_EMPTY', `${root} is not empty`);
  const targets = await repo.targets();
  const entry = targets[options.target];
  if (entry === undefined)
    throw new FerryError(
      'TARGET_UNKNOWN',
      `the repository has no target "${options.target}" (it has: ${Object.keys(targets).join(', ') || 'none'})`,
    );
  const initial = targetFromMetadata(options.target, entry.hashes, entry.custom ?? {});
  if ('invalid' in initial) throw new FerryError('REPO_INVALID', initial.invalid);
  const commit = initial.commit;
  const custom = entry.custom ?? {};
  const hardwareId = options.hardwareId ?? (custom['hardwareIds'] as string[] | undefined)?.[0];
  if (hardwareId === undefined)
    throw new FerryError('USAGE', `target "${options.target}" names no hardware id; give --hardware-id`);
  const tags = options.tags ?? (custom['tags'] as string[] | undefined) ?? [];
  const os = options.os ?? 'lmp';
  if (Object.keys(initial.apps).length > 0 && options.dockerHost === undefined) {
    throw new FerryError(
      'USAGE',
      `target "${options.target}" has apps: give --docker-host, the engine the device runs them on`,
    );
  }

  const config = await buildSimDevice(root, repo.ostree.path, commit, { ...options, hardwareId, tags, os });
  await provisionStorage(devicePaths(config), repo, initial, 'provisioned by ferry sim create');
  await bootSimDevice(root, config);
  if (Object.keys(initial.apps).length > 0) await provisionApps(config, repo, initial.apps);
  return config;
}

/**
 * A simulated device that boots `initial` (a target without apps) from any OSTree repository, such as the
 * ostree_repo/ of a stick another tool made: there is no factory, so the device trusts no root of either format and
 * no workstation knows its key; what it trusts is provisioned afterwards (`device provision --trusted-root`), as on
 * a board whose image carries it.
 */
export async function createSimDeviceFromCommit(
  deviceDir: string,
  ostreeRepo: string,
  initial: Target,
  options: Omit<SimDeviceOptions, 'target' | 'hardwareId' | 'dockerHost'> & { readonly hardwareId: string },
): Promise<DeviceConfig> {
  const root = path.resolve(deviceDir);
  if (!(await isEmptyOrMissingDir(root))) throw new FerryError('DESTINATION_NOT_EMPTY', `${root} is not empty`);
  if (Object.keys(initial.apps).length > 0) {
    throw new FerryError('USAGE', `target "${initial.name}" has apps: a device made from a commit starts without any`);
  }
  const config = await buildSimDevice(root, ostreeRepo, initial.commit, {
    ...options,
    tags: options.tags ?? [],
    os: options.os ?? 'lmp',
  });
  const paths = devicePaths(config);
  await new StatusFile(paths.statusFile, paths.updateStateFile, paths.inconsistentFile).save({
    ...emptyStatus(),
    state: 'DONE',
    reason: `provisioned from commit ${initial.commit}`,
    current: refOf(initial),
  });
  const { key } = await provisionDeviceKey(paths);
  await writeDeviceRequest(paths, key);
  await provisionDecryptionKey(paths, key.id);
  await bootSimDevice(root, config);
  return config;
}

/** The sysroot booting `commit` (pulled from `ostreeRepo`), the bootloader env and the configuration. */
async function buildSimDevice(
  root: string,
  ostreeRepo: string,
  commit: string,
  options: Omit<SimDeviceOptions, 'target' | 'hardwareId' | 'tags' | 'os'> & {
    readonly hardwareId: string;
    readonly tags: readonly string[];
    readonly os: string;
  },
): Promise<DeviceConfig> {
  const { hardwareId, tags, os } = options;
  const sysroot = new Sysroot(path.join(root, 'sysroot'), os);
  await sysroot.initialize();
  await sysroot.repo.pullLocal(ostreeRepo, commit, { untrusted: true });
  await sysroot.deploy(commit);
  const bootloader = await createBootEnv(root, options.bootloader ?? 'uboot', options.bootlimit ?? 3);

  const configDir = simConfigDir(root);
  await fs.mkdir(configDir, { recursive: true });
  const toml = [
    "# A ferry simulated device. Keys follow aktualizr-lite's sota.toml; [ferry] holds ferry's own.",
    '[provision]',
    `primary_ecu_hardware_id = ${JSON.stringify(hardwareId)}`,
    '',
    '[pacman]',
    'type = "ostree"',
    `os = ${JSON.stringify(os)}`,
    `sysroot = ${JSON.stringify(sysroot.path)}`,
    `tags = ${JSON.stringify(tags.join(','))}`,
    '',
    '[storage]',
    `path = ${JSON.stringify(path.join(root, 'var', 'sota'))}`,
    '',
    '[bootloader]',
    ...bootloader,
    `reboot_sentinel_dir = ${JSON.stringify(path.join(root, 'run', 'aktualizr-session'))}`,
    'reboot_sentinel_name = "need_reboot"',
    '',
    '[ferry]',
    `cmdline_file = ${JSON.stringify(path.join(root, 'proc', 'cmdline'))}`,
    `production = ${options.production ? 'true' : 'false'}`,
    ...(options.dockerHost ? [`docker_host = ${JSON.stringify(options.dockerHost)}`] : []),
    `testing_window_seconds = ${options.testingWindowSeconds ?? 120}`,
    // The device's own health checks, not the host's.
    `health_checks_dir = ${JSON.stringify(path.join(root, 'etc', 'ferry', 'check.d'))}`,
    '',
  ].join('\n');
  await fs.writeFile(path.join(configDir, '50-ferry-sim.toml'), toml);
  const config = await loadDeviceConfig([configDir]);
  return config;
}

/** The first boot of a simulated device: its cmdline and volatile directory, as a reboot leaves them. */
async function bootSimDevice(root: string, config: DeviceConfig): Promise<void> {
  await fs.mkdir(path.dirname(config.cmdlineFile), { recursive: true });
  await rebootSimDevice(root);
}

/**
 * The storage of a device as a factory line leaves it: the factory's newest root trusted, the initial target DONE,
 * and a device key the factory knows, so that the reports the device leaves on a stick can be verified on the
 * workstation. `paths` may lie anywhere (a disk image being built keeps them under its sysroot's /var).
 */
export async function provisionStorage(
  paths: DevicePaths,
  repo: FactoryRepo,
  initial: Target,
  reason: string,
): Promise<void> {
  await fs.mkdir(paths.trustedMetadataDir, { recursive: true });
  const rootFiles = await repo.rootFiles();
  const newestRoot = rootFiles[rootFiles.length - 1]!;
  // As the factory's image would carry it: the root of the format the factory signs in, in that format's own place.
  if ((await repo.metadataFormat()) === 'fioctl') {
    await saveFoundriesTrust(paths.foundriesTrustDir, { root: await fs.readFile(newestRoot), versions: undefined });
  } else {
    await fs.copyFile(newestRoot, path.join(paths.trustedMetadataDir, 'root.json'));
  }
  await new StatusFile(paths.statusFile, paths.updateStateFile, paths.inconsistentFile).save({
    ...emptyStatus(),
    state: 'DONE',
    reason,
    current: refOf(initial),
  });
  const { key } = await provisionDeviceKey(paths);
  await writeDeviceRequest(paths, key);
  await provisionDecryptionKey(paths, key.id);
  await registerDeviceKey(repo.dir, key.id, key.publicKey);
}

/** As a factory image would: the initial target's apps are in the store and running. */
async function provisionApps(
  config: DeviceConfig,
  repo: FactoryRepo,
  apps: Readonly<Record<string, AppPin>>,
): Promise<void> {
  const device = openDevice(config);
  await device.engine.ensureReachable();
  await device.appStore.stage(repo.apps, await verifyApps(repo.apps, apps, 'factory apps/'));
  const result = await switchApps(device.engine, device.appStore, {}, apps, config.testingWindowMs);
  if (!result.ok)
    throw new FerryError('APPS_FAILED_NO_ROLLBACK', `the initial apps did not start: ${result.failures.join('; ')}`);
}

/** A file-backed bootloader env written by the bootloader's own tools; returns its [bootloader] config lines. */
async function createBootEnv(root: string, kind: 'uboot' | 'grub', bootlimit: number): Promise<string[]> {
  const envDir = path.join(root, 'boot-env');
  await fs.mkdir(envDir, { recursive: true });
  await fs.mkdir(path.join(root, 'etc'), { recursive: true });
  if (kind === 'grub') {
    const grubenv = path.join(envDir, 'grubenv');
    await runTool('grub-editenv', [grubenv, 'create']);
    const vars = { ...initialVariables(GRUB_VARIABLES, bootlimit) };
    await runTool('grub-editenv', [grubenv, 'set', ...Object.entries(vars).map(([name, value]) => `${name}=${value}`)]);
    return ['rollback_mode = "grub"', `grub_env_file = ${JSON.stringify(grubenv)}`];
  }
  const envText = path.join(envDir, 'uboot.env.txt');
  const vars = initialVariables(UBOOT_VARIABLES, bootlimit);
  await fs.writeFile(
    envText,
    Object.entries(vars)
      .map(([name, value]) => `${name}=${value}\n`)
      .join(''),
  );
  // A redundant env, as on a real device (boot/u-boot/boot.cmd): two copies, so that a power cut during a write
  // tears at most the copy being written.
  const envImage = path.join(envDir, 'uboot.env');
  const redundantImage = path.join(envDir, 'uboot-redund.env');
  await runTool('mkenvimage', ['-r', '-s', '0x4000', '-o', envImage, envText]);
  await fs.copyFile(envImage, redundantImage);
  await fs.rm(envText);
  const fwEnvConfig = path.join(root, 'etc', 'fw_env.config');
  await fs.writeFile(fwEnvConfig, `# device   offset   size\n${envImage} 0x0 0x4000\n${redundantImage} 0x0 0x4000\n`);
  return ['rollback_mode = "uboot_masked"', `fw_env_config = ${JSON.stringify(fwEnvConfig)}`];
}

function initialVariables(vars: BootVariables, bootlimit: number): Record<string, string> {
  return {
    [vars.bootLimit]: String(bootlimit),
    [vars.bootCounter]: '0',
    [vars.upgradeAvailable]: '0',
    [vars.bootUpgradeAvailable]: '0',
    [vars.rollback]: '0',
  };
}

/**
 * A copy of the simulated device at `sourceDir` in `deviceDir`, for tests that start many times from one state.
 * `cp -a` keeps the hard links between the sysroot's repository and its deployments, and sparse files sparse; ostree's
 * immutable flag on each deployment directory, which cp does not carry, is set again. The device names its own
 * files by absolute path in two places, its configuration and fw_env.config: both are re-pointed at the copy, and
 * `dockerHost` moves it to another engine. The containers are not in the directory: see startSimApps.
 */
export async function copySimDevice(
  sourceDir: string,
  deviceDir: string,
  options: { readonly dockerHost?: string } = {},
): Promise<DeviceConfig> {
  const source = path.resolve(sourceDir);
  const root = path.resolve(deviceDir);
  if (!(await isEmptyOrMissingDir(root))) throw new FerryError('DESTINATION_NOT_EMPTY', `${root} is not empty`);
  await fs.mkdir(root, { recursive: true });
  await runTool('cp', ['-a', '--sparse=always', '--reflink=auto', `${source}/.`, root]);

  const deployments = path.join(root, 'sysroot', 'ostree', 'deploy');
  for (const os of await fs.readdir(deployments)) {
    for (const name of await fs.readdir(path.join(deployments, os, 'deploy'))) {
      if (!/^[0-9a-f]{64}\.\d+$/.test(name)) continue;
      const original = path.join(source, 'sysroot', 'ostree', 'deploy', os, 'deploy', name);
      const flags = (await runTool('lsattr', ['-d', original])).split(/\s+/)[0]!;
      if (flags.includes('i')) await runTool('chattr', ['+i', path.join(deployments, os, 'deploy', name)]);
    }
  }

  const configDir = simConfigDir(root);
  const repoint = async (file: string, edit: (text: string) => string = (text) => text): Promise<void> => {
    const text = await fs.readFile(file, 'utf8');
    await fs.writeFile(file, edit(text.split(`${source}/`).join(`${root}/`)));
  };
  for (const name of await fs.readdir(configDir)) {
    if (!name.endsWith('.toml')) continue;
    await repoint(path.join(configDir, name), (text) =>
      options.dockerHost === undefined
        ? text
        : text.replace(/^docker_host = .*$/m, `docker_host = ${JSON.stringify(options.dockerHost)}`),
    );
  }
  const fwEnvConfig = path.join(root, 'etc', 'fw_env.config');
  if (await pathExists(fwEnvConfig)) await repoint(fwEnvConfig);
  return loadDeviceConfig([configDir]);
}

/**
 * Starts the apps of the device's current target from its own app store, as the engine of a board that was
 * provisioned with them does at power-on: for a copy (copySimDevice), on an engine that runs no container of the
 * device it was copied from. Images the engine lacks are loaded from the store. There is no testing window: the
 * apps are the ones the device already runs, and one look finds each service running.
 */
export async function startSimApps(deviceDir: string): Promise<void> {
  const config = await loadDeviceConfig([simConfigDir(path.resolve(deviceDir))]);
  const paths = devicePaths(config);
  const { status } = await new StatusFile(paths.statusFile, paths.updateStateFile, paths.inconsistentFile).load();
  const apps = status.current?.apps ?? {};
  if (Object.keys(apps).length === 0) return;
  const device = openDevice(config);
  await device.engine.ensureReachable();
  const started = await startApps(device.engine, device.appStore, {}, apps);
  const failures = started.ok ? await appsOutOfSync(device.engine, device.appStore, apps) : started.failures;
  if (failures.length > 0)
    throw new FerryError('APPS_FAILED_NO_ROLLBACK', `the device's apps did not start: ${failures.join('; ')}`);
}

export async function rebootSimDevice(deviceDir: string): Promise<SimulatedBoot> {
  const config = await loadDeviceConfig([simConfigDir(path.resolve(deviceDir))]);
  return simulateReboot({
    sysroot: config.sysroot,
    boot: bootControlFor(config.bootloader),
    cmdlineFile: config.cmdlineFile,
    volatileDir: config.rebootSentinelDir,
  });
}
