import { loadDeviceStatus } from './rebuild-status.js';
import path from 'node:path';
import { appsOutOfSync } from '../apps/device/app-runner.js';
import { AppsDir } from '../apps/format/apps-dir.js';
import { verifyApps, type VerifiedApp } from '../apps/format/verify-apps.js';
import { commitsPresent, type BundleDir } from '../bundle/format/bundle-dir.js';
import { openBundleSource, type BundleSource } from '../bundle/format/bundle-source.js';
import { signedPartsOf, type SealedBundle } from '../bundle/format/encrypted-bundle.js';
import { loadDecryptionKeys } from '../device/decryption-keys.js';
import { errorReport, type CommandReport } from '../command-report.js';
import {
  readBootFlags,
  readBooted,
  rebootSentinelPresent,
  writeRebootSentinel,
  type Device,
} from '../device/device.js';
import { removeLeftovers } from '../device/leftovers.js';
import { loadTimeFloor, raiseTimeFloor } from '../device/time-floor-file.js';
import {
  INSTALL_UNDER_WAY_STATES,
  type PendingUpdate,
  type TargetRef,
  type UpdateState,
} from '../device/status-file.js';
import { availableBytes, treeBytesInBackground } from '../util/free-space.js';
import { FerryError, describeCause } from '../errors.js';
import type { AppPin } from '../tuf/target.js';
import { describeTime, effectiveTime } from '../tuf/time-floor.js';
import {
  discardStickScratch,
  promoteStickTrust,
  staticDeltaOf,
  verifyStick,
  type VerifiedStick,
} from './stick-trust.js';
import {
  checkStaticDelta,
  copyStaticDelta,
  staticDeltaInPlace,
  type StaticDeltaFile,
} from '../bundle/format/static-delta.js';
import {
  describeDamagedObject,
  describeMissingObject,
  findBadObject,
  findMissingObject,
} from '../ostree/object-walk.js';
import { isNoSpace } from '../util/no-space.js';
import { callBack, failedResult } from './callbacks.js';
import { Journal } from './journal.js';
import { planInstall, type InstallDecision } from './plan.js';
import { planRun } from './run-plan.js';
import { undoInterruptedInstall } from './recover.js';
import { StatusRecorder } from './status-recorder.js';
import { fitsDevice, selectTarget } from './select-target.js';
import type { ProgressListener } from '../progress.js';
import { withPullProgress } from '../ostree/pull-progress.js';

export interface InstallOptions {
  readonly srcDir: string;
  readonly targetName?: string | undefined;
  readonly force?: boolean;
  readonly now?: Date;
  /**
   * Where the bundle came from (see DeviceStatus.lastMedia); recorded, once the bundle's metadata verified, so that
   * `run` can report there too.
   */
  readonly media?: string;
  /** Called once the bundle's metadata verified from the device's trusted root: its media may then take a report. */
  readonly onBundleVerified?: () => void;
  /** Byte progress of the copy, for bars or a dashboard. */
  readonly progress?: ProgressListener | undefined;
}

/**
 * `install`: verify the bundle, choose the target, and stage it so that the next boot (or engine restart) runs it.
 * prepareInstall decides (every refusal happens there, and nothing but the status record is written before it
 * returns); applyInstall writes what the plan says.
 */
export async function installFromBundle(device: Device, options: InstallOptions): Promise<CommandReport> {
  const { status: loaded } = await loadDeviceStatus(device);
  const recorder = new StatusRecorder(device, loaded, 'install');
  const journal = await Journal.open(device.paths.journalFile, 'install');
  let plan: InstallPlan | undefined;
  let source: BundleSource | undefined;
  let report: CommandReport | undefined;
  try {
    const interrupted = journal.describeInterrupted();
    if (interrupted !== null) recorder.log(interrupted);
    if (recorder.status.pending?.phase === 'deploying') await undoIfNeverRan(device, recorder, journal);
    // An update is pending, so this install ends in a refusal (30, or whatever the bundle earns first): the state, its
    // last error and the media `run` reports to stay those of the pending update; the refusal goes to the history.
    if (recorder.status.pending !== null) recorder.keepUpdateState();
    await recorder.phase('QUEUED', `bundle ${options.srcDir}`);
    // Verifying the stick is aktualizr-lite's check for an update.
    await callBack(device, recorder, 'check-for-update-pre', null);
    try {
      source = await openBundleSource(options.srcDir, path.dirname(device.paths.statusFile));
      recorder.log(`bundle: ${source.kind} ${options.srcDir}`);
      plan = await prepareInstall(
        device,
        recorder,
        source.bundle,
        options,
        source.sealed,
        source.kind === 'directory' ? 'copy' : 'in-place',
      );
    } catch (error) {
      await callBack(device, recorder, 'check-for-update-post', null, failedResult(noSpaceOr(error)));
      throw error;
    }
    await callBack(device, recorder, 'check-for-update-post', plannedTarget(plan).name, 'OK');
    report = await applyInstall(device, recorder, journal, source.bundle, plan, loaded.state, options.progress);
    return report;
  } catch (error) {
    report = errorReport(noSpaceOr(error));
    await recorder.finish({ state: 'WONTGO', report, cause: error });
    return report;
  } finally {
    if (plan) await discardStickScratch(plan.verified);
    if (plan?.action === 'stage') await plan.rootfsDelta?.discard();
    await source?.close();
    await journal.end(report?.outcome ?? 'INTERNAL_ERROR');
  }
}

/** The target an install plan stages, or finds the device already runs. */
export function plannedTarget(plan: InstallPlan): TargetRef {
  return plan.action === 'stage' ? plan.decision.target : plan.target;
}

/** What an install will do, decided before anything but the status record is written. */
export type InstallPlan =
  | {
      readonly action: 'already-installed';
      readonly target: TargetRef;
      readonly verified: VerifiedStick;
    }
  | {
      readonly action: 'stage';
      readonly decision: Extract<InstallDecision, { action: 'stage' }>;
      readonly verified: VerifiedStick;
      /** The apps the store lacks, verified along their digest chain in the bundle. */
      readonly apps: readonly VerifiedApp[];
      readonly needs: SpaceNeeds;
      /** The static delta file to apply, checked against its signed digest, when the rootfs changes by one. */
      readonly rootfsDelta: StaticDeltaFile | undefined;
      /** The time floor the metadata was checked against; it rises once the install goes ahead. */
      readonly timeFloor: Date | undefined;
    };

/**
 * How an install reads a bundle's static delta: `copy` takes it off the stick into scratch beside the device's
 * storage, hashed as it is copied, and applies the copy; `in-place` hashes it where it is and applies it from there
 * (a bundle unpacked from a .tar or decrypted is in that scratch already; `check` writes nothing).
 */
export type StaticDeltaReading = 'copy' | 'in-place';

/**
 * Every check of an install, in the order a device can answer them: the metadata from the trusted root, the target
 * it selects, the decision against what the device runs, a delta's base, the apps' digest chains, the space, and a
 * static delta's digest. Only reads (the status record reports the phases), but for scratch beside the storage (an
 * encrypted payload decrypted, a static delta copied off the stick): a refusal is thrown from here, and leaves the
 * device as it was.
 */
export async function prepareInstall(
  device: Device,
  recorder: StatusRecorder,
  bundle: BundleDir,
  options: InstallOptions,
  /** An encrypted bundle's payload, decrypted into `bundle` once its metadata verified. */
  sealed?: SealedBundle,
  deltaReading: StaticDeltaReading = 'in-place',
): Promise<InstallPlan> {
  const status = recorder.status;
  // The size of the rootfs objects, for the space check: counted while the metadata is verified (an encrypted
  // bundle's, once they are decrypted).
  const countObjects = () => {
    const counted = treeBytesInBackground(path.join(bundle.ostreeRepo.path, 'objects'));
    counted.catch(() => undefined);
    return counted;
  };
  let rootfsObjectBytes = sealed === undefined ? countObjects() : Promise.resolve(0);
  const booted = await readBooted(device);
  const flags = await readBootFlags(device);
  recorder.log(
    `booted commit ${booted.commit}; ${device.boot.description}: upgrade_available=${flags.upgradeAvailable ? 1 : 0}`,
  );
  await recorder.phase('VERIFYING', 'checking the TUF metadata of the bundle');
  // Expiry is checked against the device clock, but never against a time before the newest signing time this
  // device has verified: a clock that lost its battery must not make expired metadata valid again.
  const floor = await loadTimeFloor(device.paths.timeFloorFile);
  if (floor.recovered !== undefined) recorder.log(floor.recovered);
  const time = effectiveTime(options.now ?? new Date(), floor.floor);
  if (time.fromFloor) recorder.log(describeTime(time));
  const verified = await verifyStick({
    paths: device.paths,
    tufDir: bundle.tufDir,
    time,
    expectedType: device.config.production ? 'prod' : 'ci',
    log: (line) => recorder.log(line),
  });
  try {
    recorder.log(
      `metadata verified (${verified.format} format): root version ${verified.rootVersion}; bundle ${verified.bundle.type}/${verified.bundle.tag} names ${verified.bundle.targets.join(', ')}`,
    );
    if (options.media !== undefined)
      await recorder.phase('VERIFYING', `the bundle on ${options.media} verified`, null, { lastMedia: options.media });
    options.onBundleVerified?.();
    if (await unsealContent(device, recorder, verified, sealed, options)) rootfsObjectBytes = countObjects();
    // A static delta's file stands in for the objects it writes: it holds every one of them, compressed.
    const staticDelta = staticDeltaOf(verified);
    if (staticDelta !== undefined) rootfsObjectBytes = Promise.resolve(staticDelta.length);
    const selected = selectTarget({
      bundle: verified.bundle,
      targets: verified.targets,
      unusable: verified.unusable,
      facts: device.config,
      commitsInBundle: await commitsPresent(
        bundle,
        verified.targets.map((target) => target.commit),
        staticDelta,
      ),
      requestedName: options.targetName,
    });
    recorder.log(`selected target ${selected.name} (version ${selected.version}, commit ${selected.commit})`);
    const decision = planInstall({
      status,
      booted,
      flags,
      selected,
      known: verified.targets.filter((target) => fitsDevice(target, device.config)),
      force: options.force ?? false,
      appsOutOfSync:
        selected.commit === booted.commit ? await appsOutOfSync(device.engine, device.appStore, selected.apps) : [],
    });
    switch (decision.action) {
      case 'refuse':
        throw decision.error;
      case 'already-installed':
        return { action: 'already-installed', target: decision.target, verified };
    }
    const { apps, needs, rootfsDelta } = await checkStaging(
      device,
      recorder,
      bundle,
      verified,
      decision,
      rootfsObjectBytes,
      deltaReading,
    );
    return { action: 'stage', decision, verified, apps, needs, rootfsDelta, timeFloor: floor.floor };
  } catch (error) {
    await discardStickScratch(verified);
    throw error;
  }
}

/**
 * Decrypts an encrypted bundle's payload, now that the metadata naming its digests verified; says whether it did. A
 * bundle whose signed metadata names an encrypted payload is taken only as the encrypted file, and an encrypted file
 * only with metadata that names its payload.
 */
async function unsealContent(
  device: Device,
  recorder: StatusRecorder,
  verified: VerifiedStick,
  sealed: SealedBundle | undefined,
  options: InstallOptions,
): Promise<boolean> {
  const parts = verified.format === 'ferry' ? verified.bundle.encrypted : undefined;
  if (sealed === undefined) {
    if (parts === undefined) return false;
    throw new FerryError(
      'ENCRYPTED_PAYLOAD_MISMATCH',
      `the signed bundle-targets.json names an encrypted payload, and ${options.srcDir} is not the encrypted bundle file it belongs to: install from the file export wrote`,
    );
  }
  const keys = await loadDecryptionKeys(device.paths);
  for (const skipped of keys.skipped)
    recorder.log(`decryption key ${skipped.name} (${skipped.file}) skipped: ${skipped.reason}`);
  if (keys.length === 0)
    throw new FerryError(
      'NOT_A_RECIPIENT',
      'the bundle is encrypted and this device holds no decryption key: provision it (ferry device provision), and export the bundle to its certificate',
    );
  await recorder.phase('VERIFYING', 'checking the encrypted payload against its signed digest, then decrypting it');
  await sealed.unseal(
    signedPartsOf(parts, options.srcDir),
    keys.map((entry) => entry.key),
    options.progress,
  );
  recorder.log(`encrypted payload checked and decrypted (${sealed.file})`);
  return true;
}

/**
 * The stick's apps, in the layout of its format: a Foundries stick keeps them as aklite's app store does
 * (apps/apps/<app>/<hash>/ beside apps/blobs/), one level deeper than ferry's; the digest chain is checked the same way.
 */
export function stickApps(bundle: BundleDir, verified: VerifiedStick): AppsDir {
  return new AppsDir(bundle.appsDir, undefined, verified.format === 'foundries' ? 'foundries' : 'ferry');
}

/**
 * The checks of an install that stages: a delta's base on the device, the apps the store lacks along their digest
 * chain in the bundle, and the space they and the rootfs need.
 */
async function checkStaging(
  device: Device,
  recorder: StatusRecorder,
  bundle: BundleDir,
  verified: VerifiedStick,
  decision: Extract<InstallDecision, { action: 'stage' }>,
  rootfsObjectBytes: Promise<number>,
  deltaReading: StaticDeltaReading,
): Promise<{ apps: readonly VerifiedApp[]; needs: SpaceNeeds; rootfsDelta: StaticDeltaFile | undefined }> {
  const { target, transition } = decision;
  // A delta bundle holds only what its target adds to its base: the device must hold the base, checked before a
  // byte is written (the untrusted pull would find out too, but only half-way).
  const base = verified.bundle.base;
  if (base !== undefined && !(await device.sysroot.repo.hasCommitObject(base.commit))) {
    throw new FerryError(
      'CONTENT_MISSING',
      `this is a delta bundle on top of target "${base.target}" (commit ${base.commit}), which this device does not have: install "${base.target}" first, or use a full bundle`,
    );
  }
  // A static delta is checked whole against its signed length and SHA-256 (66) before a byte is written; ostree then
  // checks every object it writes against its checksum. One to be copied off the stick is hashed as it is copied,
  // once the space check passed: here only its length is.
  const staticDelta = transition.rootfsChanged ? staticDeltaOf(verified) : undefined;
  const copyDelta = staticDelta !== undefined && deltaReading === 'copy';
  if (staticDelta !== undefined) {
    if (!copyDelta) await recorder.phase('VERIFYING', `checking ${staticDelta.file} against its signed digest`);
    await checkStaticDelta(bundle, staticDelta, target, { hash: !copyDelta });
  }
  // Every object the commit reaches must be on the device or in the bundle (8), found by walking the objects, before
  // a byte is written. Whether each one matches its checksum the pull checks as it copies (70, undone).
  else if (transition.rootfsChanged) {
    const missing = await findMissingObject(target.commit, [device.sysroot.repo.path, bundle.ostreeRepo.path]);
    if (missing !== undefined)
      throw new FerryError(
        'CONTENT_MISSING',
        `ostree_repo/: content of target "${target.name}" is incomplete: ${describeMissingObject(missing)}`,
      );
  }
  await recorder.phase('VERIFYING', `checking the apps of "${target.name}" along their digest chain`);
  const missing: Record<string, AppPin> = {};
  for (const [name, pin] of Object.entries(target.apps))
    if (!(await device.appStore.hasApp(name, pin))) missing[name] = pin;
  const apps = await verifyApps(
    stickApps(bundle, verified),
    missing,
    'apps/',
    base === undefined ? undefined : (digest) => device.appStore.apps.blobs.has(digest),
  );
  const needs = await checkSpace(
    device,
    apps,
    transition.rootfsChanged ? rootfsObjectBytes : undefined,
    copyDelta ? staticDelta.length : 0,
  );
  recorder.log(`space: ${needs.appBytes} B of apps, ${needs.rootfsBytes} B of rootfs objects`);
  if (staticDelta === undefined) return { apps, needs, rootfsDelta: undefined };
  if (!copyDelta) return { apps, needs, rootfsDelta: staticDeltaInPlace(bundle, staticDelta) };
  await recorder.phase('VERIFYING', `copying ${staticDelta.file} off the stick, checked against its signed digest`);
  const rootfsDelta = await copyStaticDelta(bundle, staticDelta, target, path.dirname(device.paths.statusFile));
  return { apps, needs, rootfsDelta };
}

/**
 * Carries out an install plan: records that the device already runs the target, or stages it. The first write of
 * the install happens here; what can fail from here on is a write, undone as the journal says.
 */
export async function applyInstall(
  device: Device,
  recorder: StatusRecorder,
  journal: Journal,
  bundle: BundleDir,
  plan: InstallPlan,
  /** The state before this install began. */
  stateBefore: UpdateState,
  progress: ProgressListener | undefined,
): Promise<CommandReport> {
  if (plan.action === 'stage') return stage(device, recorder, journal, bundle, plan, progress);
  const report: CommandReport = {
    outcome: 'ALREADY_INSTALLED',
    message: `the device already runs target "${plan.target.name}" (version ${plan.target.version}); nothing to install`,
    data: { target: plan.target },
  };
  await recorder.finish(
    {
      // Nothing happened: the state stays what it was before this install began, unless that said an update ran.
      state: stateBefore === 'IDLE' || INSTALL_UNDER_WAY_STATES.has(stateBefore) ? 'DONE' : stateBefore,
      report,
      target: plan.target.name,
    },
    // A record that did not know it (a factory-flashed device, a rebuilt record) learns what the device runs.
    { current: plan.target },
  );
  return report;
}

/**
 * An install that stopped before it finished is undone before another one starts, unless the device booted its
 * target (then `run` finishes it, and this install is refused as pending).
 */
async function undoIfNeverRan(device: Device, recorder: StatusRecorder, journal: Journal): Promise<void> {
  const pending = recorder.status.pending!;
  const sentinel = await rebootSentinelPresent(device);
  const decision = planRun({
    status: recorder.status,
    rebootSentinelPresent: sentinel,
    booted: await readBooted(device),
    flags: await readBootFlags(device),
    defaultCommit: (await device.sysroot.deployments())[0]?.commit ?? null,
  });
  if (decision.action !== 'undo-interrupted') return;
  await undoInterruptedInstall(device, journal, pending, (line) => recorder.log(line));
  await journal.step('recover.record', () =>
    recorder.phase('QUEUED', `the interrupted install of "${pending.target.name}" was undone`, null, {
      pending: null,
      current: pending.previous ?? recorder.status.current,
    }),
  );
}

/** Running out of space half-way is the same refusal as too little space up front: nothing was kept. */
function noSpaceOr(error: unknown): unknown {
  if (error instanceof FerryError && error.outcome === 'NO_SPACE') return error;
  if (!isNoSpace(error)) return error;
  return new FerryError(
    'NO_SPACE',
    `the filesystem filled up while the update was copied (${describeCause(error)}); what was copied was removed`,
    { cause: error },
  );
}

/**
 * Pulls the commit with every object checked against its checksum; a failure leaves the repo as it was. When it
 * fails, the objects on disk say why, not ostree's words: an object the bundle lacks (8) or one that is not what its
 * name says (70). The device's repo is looked at first: an object it already holds is not needed from the bundle, as
 * ostree itself skips it. Anything else (the disk filled up, a write failed) is not the bundle's fault.
 */
async function pullRootfs(device: Device, bundle: BundleDir, name: string, commit: string): Promise<void> {
  const repo = device.sysroot.repo;
  try {
    await repo.pullLocal(bundle.ostreeRepo.path, commit, { untrusted: true });
  } catch (error) {
    const bad = await findBadObject(commit, [repo.path, bundle.ostreeRepo.path]).catch(() => undefined);
    if (bad?.reason === 'missing')
      throw new FerryError(
        'CONTENT_MISSING',
        `ostree_repo/: content of target "${name}" is incomplete: ${describeMissingObject(bad.object)}`,
        { cause: error },
      );
    if (bad?.reason === 'damaged')
      throw new FerryError(
        'CONTENT_VERIFICATION_FAILED',
        `ostree_repo/: content of target "${name}" failed verification: ${describeDamagedObject(bad)} (${describeCause(error)})`,
        { cause: error },
      );
    if (isNoSpace(error)) throw noSpaceOr(error);
    throw new FerryError('STAGING_FAILED', `pulling target "${name}" failed: ${describeCause(error)}`, {
      cause: error,
    });
  }
  if (!(await repo.hasCommitObject(commit)) || (await repo.resolve(commit)) !== commit) {
    throw new FerryError(
      'CONTENT_VERIFICATION_FAILED',
      `after the pull, the device repo does not hold commit ${commit} of target "${name}"`,
    );
  }
}

/**
 * Applies the bundle's static delta into the device's repo: ostree checks every object it writes against its
 * checksum, and the commit it leaves must be the signed target's. A failure deploys nothing; objects it wrote stay
 * unreferenced until ostree prunes them.
 */
async function applyRootfsDelta(device: Device, delta: StaticDeltaFile, name: string, commit: string): Promise<void> {
  const { rootfs } = delta;
  const repo = device.sysroot.repo;
  try {
    await repo.applyStaticDelta(delta.path);
  } catch (error) {
    if (isNoSpace(error)) throw noSpaceOr(error);
    throw new FerryError(
      'STATIC_DELTA_APPLY_FAILED',
      `applying ${rootfs.file} (target "${name}") failed: ${describeCause(error)}`,
      { cause: error },
    );
  }
  if (!(await repo.hasCommitObject(commit)) || (await repo.resolve(commit)) !== commit)
    throw new FerryError(
      'STATIC_DELTA_APPLY_FAILED',
      `after applying ${rootfs.file}, the device repo does not hold commit ${commit} of target "${name}"`,
    );
}

/** ostree's default `core.min-free-space-percent`. */
const OSTREE_MIN_FREE_FRACTION = 0.03;

/** Filesystem headroom kept free on top of what an update needs: metadata, status and journal writes. */
const SPACE_MARGIN_BYTES = 1024 * 1024;

interface SpaceNeeds {
  readonly appBytes: number;
  readonly rootfsBytes: number;
}

/**
 * Refuses (60) before anything is written when the update cannot fit: the app blobs the store lacks plus the
 * unpacked projects on the storage filesystem, and the rootfs objects (estimated from the bundle) on the sysroot's.
 */
async function checkSpace(
  device: Device,
  apps: readonly VerifiedApp[],
  /** The bytes of the bundle's rootfs objects, when the rootfs changes. */
  rootfsObjectBytes: Promise<number> | undefined,
  /** The bytes of a static delta copied off the stick into scratch beside the storage before it is applied. */
  deltaCopyBytes: number,
): Promise<SpaceNeeds> {
  const appBytes =
    (await device.appStore.missingBlobs(apps)).reduce((sum, blob) => sum + blob.size, 0) +
    apps.reduce(
      (sum, app) => sum + 2 * app.archive.length + app.files.reduce((total, file) => total + file.content.length, 0),
      0,
    );
  // The copy of a static delta stays on the storage filesystem until ostree has written every object out of it: on
  // one filesystem the delta counts twice (its copy, and the objects it holds, compressed), never once.
  const storageBytes = appBytes + deltaCopyBytes;
  const storage = await availableBytes(device.config.storagePath);
  const sysroot = await availableBytes(device.config.sysroot);
  // ostree refuses to write once less than min-free-space-percent (3 % by default) of its filesystem would be left.
  const rootfsBytes =
    rootfsObjectBytes === undefined
      ? 0
      : (await rootfsObjectBytes) + Math.ceil(OSTREE_MIN_FREE_FRACTION * sysroot.totalBytes);
  const needs =
    storage.device === sysroot.device
      ? [{ where: device.config.storagePath, required: storageBytes + rootfsBytes, available: storage.bytes }]
      : [
          { where: device.config.storagePath, required: storageBytes, available: storage.bytes },
          { where: device.config.sysroot, required: rootfsBytes, available: sysroot.bytes },
        ];
  for (const need of needs) {
    const required = need.required + SPACE_MARGIN_BYTES;
    if (need.required > 0 && required > need.available) {
      throw new FerryError(
        'NO_SPACE',
        `space required ${required} B, available ${need.available} B (on the filesystem of ${need.where})`,
        {
          detail: { required, available: need.available, where: need.where },
        },
      );
    }
  }
  return { appBytes, rootfsBytes };
}

/**
 * The copy of an install: the apps into staging, the rootfs objects into the device's repo, then the apps into the
 * store. The first write of the install is here: every refusal comes before it.
 */
async function copyUpdate(
  device: Device,
  recorder: StatusRecorder,
  journal: Journal,
  bundle: BundleDir,
  plan: Extract<InstallPlan, { action: 'stage' }>,
  progress: ProgressListener | undefined,
): Promise<void> {
  const { apps, needs } = plan;
  const { target, transition } = plan.decision;
  const leftovers = await journal.step('install.leftovers-remove', () => removeLeftovers(device.paths));
  if (leftovers.length > 0) recorder.log(`removed what an interrupted command left: ${leftovers.join(', ')}`);

  // Apps are copied into staging first and all at once; they enter the store only once the rootfs is in too, so a
  // blob or an OSTree object that fails its digest leaves the device as it was.
  const total = Math.max(1, needs.appBytes + needs.rootfsBytes);
  await recorder.phase('COPYING', `copying "${target.name}" from the bundle`, { unit: 'percent', value: 0 });
  const staged = await journal.step('install.apps-stage', async () => {
    progress?.({ phase: 'apps', bytes: 0, total: needs.appBytes, target: target.name });
    const prepared = await device.appStore.prepare(stickApps(bundle, plan.verified), apps, async (bytes) => {
      progress?.({ phase: 'apps', bytes: Math.min(bytes, needs.appBytes), total: needs.appBytes, target: target.name });
      await recorder.progress({ unit: 'percent', value: Math.min(99, Math.floor((100 * bytes) / total)) });
    });
    progress?.({ phase: 'apps', bytes: needs.appBytes, total: needs.appBytes, target: target.name });
    return prepared;
  });
  try {
    const rootfsDelta = plan.rootfsDelta;
    if (rootfsDelta !== undefined) {
      await journal.step(
        'install.rootfs-pull',
        async () => {
          const report = (bytes: number) =>
            progress?.({ phase: 'rootfs', bytes, total: rootfsDelta.rootfs.length, target: target.name });
          report(0);
          try {
            await applyRootfsDelta(device, rootfsDelta, target.name, target.commit);
          } finally {
            // Applied or not, the copy has served: its space is the storage's again before the deployment.
            await rootfsDelta.discard();
          }
          report(rootfsDelta.rootfs.length);
        },
        target.commit,
      );
    } else if (transition.rootfsChanged) {
      await journal.step(
        'install.rootfs-pull',
        async () =>
          withPullProgress(
            { source: bundle.ostreeRepo, destination: device.sysroot.repo, commit: target.commit },
            progress &&
              ((bytes, rootfsTotal) => progress({ phase: 'rootfs', bytes, total: rootfsTotal, target: target.name })),
            () => pullRootfs(device, bundle, target.name, target.commit),
          ),
        target.commit,
      );
    }
  } catch (error) {
    await staged.discard();
    throw error;
  }
  await journal.step('install.apps-commit', () => staged.commit());
  await recorder.progress({ unit: 'percent', value: 100 }, true);
}

/**
 * Stages the plan's target: the copy, the trusted metadata, the pending record, and the boot trial and deployment
 * (undone if they fail).
 */
async function stage(
  device: Device,
  recorder: StatusRecorder,
  journal: Journal,
  bundle: BundleDir,
  plan: Extract<InstallPlan, { action: 'stage' }>,
  progress: ProgressListener | undefined,
): Promise<CommandReport> {
  const { decision, verified, timeFloor } = plan;
  const { target, previous, transition } = decision;
  const why = transition.reasons.join('; ');
  // The copy is aktualizr-lite's download; deploying it, its install.
  await callBack(device, recorder, 'download-pre', target.name);
  try {
    await copyUpdate(device, recorder, journal, bundle, plan, progress);
  } catch (error) {
    await callBack(device, recorder, 'download-post', target.name, 'FAILED');
    throw error;
  }
  await callBack(device, recorder, 'download-post', target.name, 'OK');

  // The floor rises with the metadata it came from, in the same step, and only once the install goes ahead.
  await journal.step('install.metadata-promote', async () => {
    await promoteStickTrust(verified, device.paths);
    await raiseTimeFloor(device.paths.timeFloorFile, timeFloor, verified.bundle.signedAt);
  });
  const completion = transition.kind === 'reboot' ? 'reboot' : 'restart-engine';
  await callBack(device, recorder, 'install-pre', target.name);
  const pending: PendingUpdate = {
    phase: 'deploying',
    target,
    previous,
    installedAt: new Date().toISOString(),
    completion,
    rootfsChanged: transition.rootfsChanged,
    repair: recorder.status.inconsistent !== null,
  };
  // Recorded before the boot state changes, so that after a power cut `run` (or the next install) knows what may
  // have been written, and undoes it or carries on.
  await journal.step('install.pending-record', () =>
    recorder.phase('INPROGRESS', `staging target "${target.name}": ${why}`, null, { pending }),
  );
  try {
    // The marker first: while it is there, nothing reads this boot's deployment as a rollback. The trial before the
    // deployment: a new default entry must never exist without boot counting, or a rootfs that does not boot would
    // never be rolled back.
    if (completion === 'reboot') await journal.step('install.reboot-sentinel', () => writeRebootSentinel(device));
    if (transition.rootfsChanged) {
      await journal.step('install.boot-trial-start', () => device.boot.startTrial());
      await journal.step('install.rootfs-deploy', () => device.sysroot.deploy(target.commit), target.commit);
      recorder.log(`boot trial started; deployed ${target.commit}`);
    }
  } catch (error) {
    const failed = `deploying target "${target.name}" failed: ${describeCause(error)}`;
    try {
      await undoInterruptedInstall(device, journal, pending, (line) => recorder.log(line));
    } catch (undoError) {
      // The pending record (phase "deploying") is what lets `run`, or the next install, finish the undo: it stays.
      const report = errorReport(
        new FerryError(
          'STAGING_UNDO_INCOMPLETE',
          `${failed}; undoing it failed too (${describeCause(undoError)}): run \`run\` to finish the undo`,
          { cause: error },
        ),
      );
      await recorder.finish({ state: 'ERROR', report, target: target.name, cause: undoError });
      await callBack(device, recorder, 'install-post', target.name, 'FAILED');
      return report;
    }
    const report = errorReport(new FerryError('STAGING_FAILED', failed, { cause: error }));
    await recorder.finish({ state: 'ERROR', report, target: target.name, cause: error }, { pending: null });
    await callBack(device, recorder, 'install-post', target.name, 'FAILED');
    return report;
  }
  const report = stagedReport(decision, completion);
  await journal.step('install.pending-staged', () =>
    recorder.finish({ state: 'INPROGRESS', report, target: target.name }, { pending: { ...pending, phase: 'staged' } }),
  );
  // A staged update always waits for a reboot or an engine restart, and `run` then finalizes it.
  await callBack(device, recorder, 'install-post', target.name, 'NEEDS_COMPLETION');
  return report;
}

/** What an install that staged its target tells the operator to do next. */
function stagedReport(
  decision: Extract<InstallDecision, { action: 'stage' }>,
  completion: PendingUpdate['completion'],
): CommandReport {
  const { target, previous, transition } = decision;
  const why = transition.reasons.join('; ');
  const data = { target, previous, reasons: transition.reasons };
  if (decision.sync)
    return {
      outcome: 'APPS_SYNCED',
      message: `the device already runs target "${target.name}" (version ${target.version}); its apps were synced (${why}): restart the container engine, then run \`run\` to start them`,
      data,
    };
  if (completion === 'reboot')
    return {
      outcome: 'REBOOT_REQUIRED',
      message: `installed target "${target.name}" (version ${target.version}; ${why}); reboot, then run \`run\``,
      data,
    };
  return {
    outcome: 'RESTART_ENGINE_REQUIRED',
    message: `installed target "${target.name}" (version ${target.version}; ${why}); no reboot needed: restart the container engine, then run \`run\``,
    data,
  };
}
