import path from 'node:path';
import { AppsDir } from '../apps/apps-dir.js';
import { verifyApps, type VerifiedApp } from '../apps/verify-apps.js';
import { FerryError, describeCause } from '../errors.js';
import { availableBytes, treeBytes } from '../device/free-space.js';
import type { AppPin } from '../tuf/target.js';
import { commitsPresent, openBundleDir, type BundleDir } from '../bundle/bundle-dir.js';
import type { BootFlags } from '../device/bootloader-env.js';
import { readBooted, writeRebootSentinel, type Device } from '../device/device.js';
import type { DeviceStatus, TargetRef } from '../device/status-file.js';
import { ToolError } from '../util/tool.js';
import {
  discardScratch,
  promoteTrustedMetadata,
  verifyBundleMetadata,
  type VerifiedMetadata,
} from '../tuf/verify-metadata.js';
import { planInstall, type InstallDecision } from './plan.js';
import { errorReport, recordOutcome, type CommandReport } from './report.js';
import { selectTarget } from './select-target.js';

export interface InstallOptions {
  readonly srcDir: string;
  readonly targetName?: string | undefined;
  readonly force?: boolean;
  readonly now?: Date;
}

export async function readBootFlags(device: Device): Promise<BootFlags> {
  try {
    return await device.boot.flags();
  } catch (error) {
    throw new FerryError(
      'DEVICE_STATE_UNREADABLE',
      `cannot read the ${device.boot.description}: ${describeCause(error)}`,
      { cause: error },
    );
  }
}

/**
 * `install`: verify the bundle, choose the target, and stage it so that the next boot runs it. Everything up to the
 * decision only reads; a refusal writes nothing but its line in the status record.
 */
export async function installFromBundle(device: Device, options: InstallOptions): Promise<CommandReport> {
  const { status } = await device.statusFile.load();
  let verified: VerifiedMetadata | undefined;
  try {
    const bundle = await openBundleDir(options.srcDir);
    const booted = await readBooted(device);
    const flags = await readBootFlags(device);
    verified = await verifyBundleMetadata({
      trustedDir: device.paths.trustedMetadataDir,
      bundleTufDir: bundle.tufDir,
      ...(options.now ? { now: options.now } : {}),
    });
    const selected = selectTarget({
      bundle: verified.bundle,
      targets: verified.targets,
      unusable: verified.unusable,
      facts: device.config,
      commitsInBundle: await commitsPresent(
        bundle,
        verified.targets.map((target) => target.commit),
      ),
      requestedName: options.targetName,
    });
    const decision = planInstall({
      status,
      booted,
      flags,
      selected,
      known: verified.targets,
      force: options.force ?? false,
    });
    switch (decision.action) {
      case 'refuse':
        throw decision.error;
      case 'already-installed': {
        const report: CommandReport = {
          outcome: 'ALREADY_INSTALLED',
          message: `the device already runs target "${decision.target.name}" (version ${decision.target.version}); nothing to install`,
          data: { target: decision.target },
        };
        await recordOutcome(device, status, {
          command: 'install',
          state: status.state === 'IDLE' ? 'DONE' : status.state,
          report,
          target: decision.target.name,
        });
        return report;
      }
    }
    return await stage(device, status, bundle, verified, decision);
  } catch (error) {
    const report = errorReport(error);
    await recordOutcome(device, status, { command: 'install', state: 'WONTGO', report });
    return report;
  } finally {
    if (verified) await discardScratch(verified);
  }
}

function pullFailure(target: TargetRef, error: unknown): FerryError {
  const text = error instanceof ToolError ? error.stderr : describeCause(error);
  if (/corrupted|checksum|invalid/i.test(text)) {
    return new FerryError(
      'CONTENT_VERIFICATION_FAILED',
      `ostree_repo/: content of target "${target.name}" failed verification: ${describeCause(error)}`,
      { cause: error },
    );
  }
  if (/no such|not found|missing/i.test(text)) {
    return new FerryError(
      'CONTENT_MISSING',
      `ostree_repo/: content of target "${target.name}" is incomplete: ${describeCause(error)}`,
      { cause: error },
    );
  }
  return new FerryError('STAGING_FAILED', `pulling target "${target.name}" failed: ${describeCause(error)}`, {
    cause: error,
  });
}

/** Filesystem headroom kept free on top of what an update needs: metadata, status and journal writes. */
const SPACE_MARGIN_BYTES = 1024 * 1024;

/**
 * Refuses (60) before anything is written when the update cannot fit: the app blobs the store lacks plus the
 * unpacked projects on the storage filesystem, and the rootfs objects (estimated from the bundle) on the sysroot's.
 */
async function checkSpace(
  device: Device,
  bundle: BundleDir,
  apps: readonly VerifiedApp[],
  rootfsChanged: boolean,
): Promise<void> {
  const appBytes =
    (await device.appStore.missingBlobs(apps)).reduce((sum, blob) => sum + blob.size, 0) +
    apps.reduce(
      (sum, app) => sum + 2 * app.archive.length + app.files.reduce((total, file) => total + file.content.length, 0),
      0,
    );
  const rootfsBytes = rootfsChanged ? await treeBytes(path.join(bundle.ostreeRepo.path, 'objects')) : 0;
  const storage = await availableBytes(device.config.storagePath);
  const sysroot = await availableBytes(device.config.sysroot);
  const needs =
    storage.device === sysroot.device
      ? [{ where: device.config.storagePath, required: appBytes + rootfsBytes, available: storage.bytes }]
      : [
          { where: device.config.storagePath, required: appBytes, available: storage.bytes },
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
}

async function stage(
  device: Device,
  status: DeviceStatus,
  bundle: BundleDir,
  verified: VerifiedMetadata,
  decision: Extract<InstallDecision, { action: 'stage' }>,
): Promise<CommandReport> {
  const { target, previous, transition } = decision;
  const missing: Record<string, AppPin> = {};
  for (const [name, pin] of Object.entries(target.apps))
    if (!(await device.appStore.hasApp(name, pin))) missing[name] = pin;
  const apps = await verifyApps(new AppsDir(bundle.appsDir), missing);
  await checkSpace(device, bundle, apps, transition.rootfsChanged);

  // Apps are staged first and all at once: a blob that fails its digest leaves the store as it was.
  await device.appStore.stage(new AppsDir(bundle.appsDir), apps);
  if (transition.rootfsChanged) {
    const repo = device.sysroot.repo;
    try {
      await repo.pullLocal(bundle.ostreeRepo.path, target.commit, { untrusted: true });
    } catch (error) {
      throw pullFailure(target, error);
    }
    if (!(await repo.hasCommitObject(target.commit)) || (await repo.resolve(target.commit)) !== target.commit) {
      throw new FerryError(
        'CONTENT_VERIFICATION_FAILED',
        `after the pull, the device repo does not hold commit ${target.commit} of target "${target.name}"`,
      );
    }
  }

  await promoteTrustedMetadata(verified, device.paths.trustedMetadataDir);
  const completion = transition.kind === 'reboot' ? 'reboot' : 'restart-engine';
  // The update is recorded as pending before the deployment is written, so a later `run` knows what to expect.
  let current = await recordOutcome(
    device,
    status,
    {
      command: 'install',
      state: 'INPROGRESS',
      report: {
        outcome: 'REBOOT_REQUIRED',
        message: `staging target "${target.name}": ${transition.reasons.join('; ')}`,
      },
      target: target.name,
    },
    {
      pending: {
        target,
        previous,
        installedAt: new Date().toISOString(),
        completion,
        rootfsChanged: transition.rootfsChanged,
      },
    },
  );
  try {
    if (transition.rootfsChanged) {
      await device.sysroot.deploy(target.commit);
      await device.boot.startTrial();
    }
    if (completion === 'reboot') await writeRebootSentinel(device);
  } catch (error) {
    const report = errorReport(
      new FerryError('STAGING_FAILED', `deploying target "${target.name}" failed: ${describeCause(error)}`, {
        cause: error,
      }),
    );
    current = await recordOutcome(
      device,
      current,
      { command: 'install', state: 'ERROR', report, target: target.name },
      { pending: null },
    );
    return report;
  }
  const why = transition.reasons.join('; ');
  const report: CommandReport =
    completion === 'reboot'
      ? {
          outcome: 'REBOOT_REQUIRED',
          message: `installed target "${target.name}" (version ${target.version}; ${why}); reboot, then run \`run\``,
          data: { target, previous, reasons: transition.reasons },
        }
      : {
          outcome: 'RESTART_ENGINE_REQUIRED',
          message: `installed target "${target.name}" (version ${target.version}; ${why}); no reboot needed: restart the container engine, then run \`run\``,
          data: { target, previous, reasons: transition.reasons },
        };
  await recordOutcome(device, current, { command: 'install', state: 'INPROGRESS', report, target: target.name });
  return report;
}
