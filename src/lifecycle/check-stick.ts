import path from 'node:path';
import { commitsPresent, type BundleDir } from '../bundle/format/bundle-dir.js';
import { openBundleSource, type BundleSource } from '../bundle/format/bundle-source.js';
import type { CommandReport } from '../command-report.js';
import { readBooted, type Device } from '../device/device.js';
import type { Outcome } from '../exit-codes.js';
import type { Target } from '../tuf/target.js';
import { pathExists } from '../util/atomic-file.js';
import { callBack, failedResult } from './callbacks.js';
import { plannedTarget, prepareInstall, stickApps, type InstallPlan } from './install.js';
import { discardStickScratch, staticDeltaOf, type VerifiedStick } from './stick-trust.js';
import { currentTargetOf } from './plan.js';
import { loadDeviceStatus } from './rebuild-status.js';
import { fitsDevice } from './select-target.js';
import { StatusRecorder } from './status-recorder.js';

/** One app of a target on the stick, as `check` lists it. */
export interface CheckedApp {
  readonly name: string;
  readonly uri: string;
  /** The stick holds the app (its manifest); its digest chain is verified for the target install would take. */
  readonly onStick: boolean;
  /** The device's app store holds it complete. */
  readonly onDevice: boolean;
}

/** One verified target of the stick that fits this device. */
export interface CheckedTarget {
  readonly name: string;
  readonly version: string;
  readonly commit: string;
  readonly commitOnStick: boolean;
  readonly commitOnDevice: boolean;
  readonly apps: readonly CheckedApp[];
  /** The target install would take. */
  readonly selected: boolean;
  /** The target the device runs. */
  readonly current: boolean;
}

/**
 * `aklite-offline check`: everything install checks before it writes, and nothing written. The stick goes through
 * install's own verification (prepareInstall: metadata from the trusted root, target selection, the decision
 * against what the device runs, the apps' digest chains and the space), so a stick check accepts is one install
 * takes, and whatever install learns to read, check reads too. The trusted metadata, the time floor and the status
 * record stay as they were: the walk runs on a scratch copy, discarded here, and the recorder only logs. Only what
 * every device command does on its way in still happens: a status record or trusted state file that cannot be read is
 * moved aside (and the record rebuilt).
 */
export async function checkStick(device: Device, srcDir: string, now?: Date): Promise<CommandReport> {
  const { status } = await loadDeviceStatus(device);
  const recorder = new StatusRecorder(device, status, 'check');
  // Nothing of this command goes into the status record: it is not an update.
  recorder.keepUpdateState();
  let source: BundleSource | undefined;
  let plan: InstallPlan | undefined;
  await callBack(device, recorder, 'check-for-update-pre', null);
  try {
    try {
      source = await openBundleSource(srcDir, path.dirname(device.paths.statusFile));
      plan = await prepareInstall(device, recorder, source.bundle, { srcDir, ...(now ? { now } : {}) }, source.sealed);
    } catch (error) {
      await callBack(device, recorder, 'check-for-update-post', null, failedResult(error));
      throw error;
    }
    const selected = plannedTarget(plan);
    await callBack(device, recorder, 'check-for-update-post', selected.name, 'OK');
    const booted = await readBooted(device);
    const fitting = plan.verified.targets.filter((target) => fitsDevice(target, device.config));
    const current = currentTargetOf(status, booted, fitting);
    const targets = await describeTargets(device, source.bundle, plan.verified, fitting, selected.name, current?.name);
    const outcome: Outcome =
      plan.action === 'already-installed'
        ? 'CHECK_UP_TO_DATE'
        : plan.decision.sync
          ? 'CHECK_APPS_TO_SYNC'
          : 'CHECK_UPDATE_AVAILABLE';
    const verdict =
      outcome === 'CHECK_UP_TO_DATE'
        ? `the device already runs "${selected.name}" (version ${selected.version}): install would change nothing`
        : outcome === 'CHECK_APPS_TO_SYNC'
          ? `the device runs "${selected.name}" (version ${selected.version}) but its apps are not in sync: install would sync them`
          : `install would stage "${selected.name}" (version ${selected.version})`;
    return {
      outcome,
      message: [...targetLines(targets), verdict].join('\n'),
      data: { selected: selected.name, current: current?.name ?? null, targets },
    };
  } finally {
    if (plan) await discardStickScratch(plan.verified);
    await source?.close();
  }
}

async function describeTargets(
  device: Device,
  bundle: BundleDir,
  verified: VerifiedStick,
  targets: readonly Target[],
  selected: string,
  current: string | undefined,
): Promise<CheckedTarget[]> {
  const onStick = await commitsPresent(
    bundle,
    targets.map((target) => target.commit),
    staticDeltaOf(verified),
  );
  const appsOnStick = stickApps(bundle, verified);
  const described: CheckedTarget[] = [];
  for (const target of targets) {
    const apps: CheckedApp[] = [];
    for (const [name, pin] of Object.entries(target.apps)) {
      apps.push({
        name,
        uri: pin.uri,
        onStick: await pathExists(appsOnStick.manifestFile(name, pin.digest)),
        onDevice: await device.appStore.hasApp(name, pin),
      });
    }
    described.push({
      name: target.name,
      version: target.version,
      commit: target.commit,
      commitOnStick: onStick.has(target.commit),
      commitOnDevice: await device.sysroot.repo.hasCommitObject(target.commit),
      apps,
      selected: target.name === selected,
      current: target.name === current,
    });
  }
  return described;
}

/** The listing aklite-offline prints (`Found Targets:`, each with its ostree hash and its apps), and where each is. */
function targetLines(targets: readonly CheckedTarget[]): string[] {
  const where = (stick: boolean, device: boolean) =>
    `${stick ? 'on the stick' : 'not on the stick'}, ${device ? 'on the device' : 'not on the device'}`;
  const lines = [targets.length === 0 ? 'No Targets found' : 'Found Targets:'];
  for (const target of targets) {
    const marks = [target.current ? 'current' : '', target.selected ? 'selected' : ''].filter((mark) => mark !== '');
    lines.push(`${target.name}${marks.length > 0 ? ` (${marks.join(', ')})` : ''}`);
    lines.push(`\tostree: ${target.commit} (${where(target.commitOnStick, target.commitOnDevice)})`);
    lines.push(target.apps.length === 0 ? '\tapps: none' : '\tapps:');
    for (const app of target.apps)
      lines.push(`\t\t(on) ${app.name} -> ${app.uri} (${where(app.onStick, app.onDevice)})`);
  }
  return lines;
}
