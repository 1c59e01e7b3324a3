import { FerryError, describeCause } from '../errors.js';
import { commitsPresent, openBundleDir, type BundleDir } from '../bundle/bundle-dir.js';
import { bootFlagsOf, type BootFlags } from '../device/bootloader-env.js';
import { readBooted, writeRebootSentinel, type Device } from '../device/device.js';
import type { DeviceStatus, TargetRef } from '../device/status-file.js';
import { ToolError } from '../util/tool.js';
import {
  discardScratch,
  promoteTrustedMetadata,
  verifyBundleMetadata,
  type VerifiedMetadata,
} from '../tuf/verify-metadata.js';
import { planInstall } from './plan.js';
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
    return bootFlagsOf(await device.env.read());
  } catch (error) {
    throw new FerryError(
      'DEVICE_STATE_UNREADABLE',
      `cannot read the ${device.env.description}: ${describeCause(error)}`,
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
    return await stage(device, status, bundle, verified, decision.target, decision.previous);
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

async function stage(
  device: Device,
  status: DeviceStatus,
  bundle: BundleDir,
  verified: VerifiedMetadata,
  target: TargetRef,
  previous: TargetRef | null,
): Promise<CommandReport> {
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

  await promoteTrustedMetadata(verified, device.paths.trustedMetadataDir);
  // The update is recorded as pending before the deployment is written, so a later `run` knows what to expect.
  let current = await recordOutcome(
    device,
    status,
    {
      command: 'install',
      state: 'INPROGRESS',
      report: { outcome: 'REBOOT_REQUIRED', message: `staging target "${target.name}"` },
      target: target.name,
    },
    { pending: { target, previous, installedAt: new Date().toISOString() } },
  );
  try {
    await device.sysroot.deploy(target.commit);
    await device.env.update({ upgrade_available: '1', bootcount: '0' });
    await writeRebootSentinel(device);
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
  const report: CommandReport = {
    outcome: 'REBOOT_REQUIRED',
    message: `installed target "${target.name}" (version ${target.version}); reboot, then run \`run\``,
    data: { target, previous },
  };
  await recordOutcome(device, current, { command: 'install', state: 'INPROGRESS', report, target: target.name });
  return report;
}
