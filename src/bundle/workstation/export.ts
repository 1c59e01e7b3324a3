import { randomBytes } from 'node:crypto';
import { removeTree } from '../../util/remove-tree.js';
import { membersOfDirectory } from '../../util/tar-pack.js';
import type { FactoryRepo } from '../../repo/factory-repo.js';
import { probeMediaFilesystem } from '../../util/media-filesystem.js';
import { checkArchiveFitsMedia, packBundle } from './archive-pack.js';
import { extractBundleArchive } from '../format/bundle-archive.js';
import { bundleLayout } from '../format/bundle-dir.js';
import { planExport, type ExportOptions, type ExportPlan } from './export-plan.js';
import { scratchDir } from './export-scratch.js';
import { writeEncryptedBundle } from './export-encrypted.js';
import {
  exportVerifyFailed,
  verifyExportContent,
  verifyExportMetadata,
  writeBundleTree,
  writeMediaFile,
  type ExportResult,
  type WrittenTree,
} from './export-tree.js';

export type { ExportOptions } from './export-plan.js';
export type { ExportResult } from './export-tree.js';

/**
 * `export`: writes the bundle layout of reference §1 for one target. It plans (every check that can refuse, before
 * the first byte is written: export-plan.ts), writes the tree (export-tree.ts) and, for --archive, packs it
 * (archive-pack.ts). The factory's versions (targets, snapshot, timestamp, bundle-targets) move only once the bundle
 * is on the media: a failed export leaves the factory repo as it was.
 */
export async function exportBundle(repo: FactoryRepo, options: ExportOptions): Promise<ExportResult> {
  const media = await (options.filesystemProbe ?? probeMediaFilesystem)(options.destination);
  const plan = await planExport(repo, options, media);
  await repo.keys.reach(['targets', 'snapshot', 'timestamp']);
  const written =
    plan.recipients !== undefined
      ? await writeEncryptedBundle(repo, plan, plan.recipients)
      : options.archive === undefined
        ? await writeBundleTree(repo, plan, { destination: options.destination, scratchTree: false })
        : await writeBundleArchive(repo, plan, options.archive);
  await recordFactoryVersions(repo, plan, written);
  return written.result;
}

/**
 * The versions the bundle was signed with become the factory's: the next export (or `target add`) signs above them,
 * so devices that took this bundle take the next one too.
 */
async function recordFactoryVersions(repo: FactoryRepo, plan: ExportPlan, written: WrittenTree): Promise<void> {
  await repo.saveRelease(written.release);
  const settings = await repo.settings();
  await repo.saveSettings({ ...settings, bundleVersion: Math.max(settings.bundleVersion, plan.bundleVersion) });
}

/**
 * An archive export: the tree is built beside the factory repo (ostree hard-links the objects there, nothing is
 * copied twice) and removed once it is packed: the media gets one sequential write, the archive.
 */
async function writeBundleArchive(repo: FactoryRepo, plan: ExportPlan, kind: 'tar' | 'zip'): Promise<WrittenTree> {
  const { options, media } = plan;
  const suffix = randomBytes(4).toString('hex');
  const tree = await scratchDir(repo, 'tree');
  const verifyDir = `${options.destination}.verify-${suffix}`;
  try {
    const written = await writeBundleTree(repo, plan, { destination: tree, scratchTree: true });
    const members = await membersOfDirectory(tree);
    await checkArchiveFitsMedia(members, options.destination, media);
    await writeMediaFile(options.destination, media, async (partial) => {
      await packBundle(members, partial, kind);
      // With --read-back, verified as a device reads it: unpacked with every member check, then the whole bundle.
      if (options.readBack === true) {
        await extractBundleArchive(partial, kind, verifyDir).catch((error: unknown) => {
          throw exportVerifyFailed(error, `the written ${kind}`);
        });
        const unpacked = bundleLayout(verifyDir);
        const metadata = await verifyExportMetadata(
          repo,
          unpacked,
          options.targetName,
          written.result.commit,
          plan.now,
        );
        await verifyExportContent(unpacked, metadata, true, undefined, options.progress);
      }
    });
    return { ...written, result: { ...written.result, destination: options.destination } };
  } finally {
    await removeTree(tree);
    await removeTree(verifyDir);
  }
}
