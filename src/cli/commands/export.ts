import path from 'node:path';
import { Option, type Command } from 'commander';
import { exportBundle } from '../../bundle/workstation/export.js';
import { ROOTFS_FORMS, type RootfsForm } from '../../bundle/workstation/export-plan.js';
import { withFactoryRepo } from '../../repo/factory-lock.js';
import { METADATA_FORMATS, type MetadataFormat } from '../../repo/metadata-format.js';
import { progressFor, type CommandContext } from '../command-context.js';
import { collect, positiveInteger, progressFdOption } from '../shared-options.js';

/** export: a bundle for the stick. */
export function registerExportCommand(program: Command, { io, setReport }: CommandContext): void {
  program
    .command('export <target> <dst>')
    .description(
      'write a bundle for <target> into <dst>: tuf/ (re-signed, expiring in N days), the rootfs (ostree_repo/, or rootfs/ with --rootfs static-delta) and apps/',
    )
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
    .addOption(
      new Option(
        '--allow-multiple-targets',
        'add <target> to the bundle already in <dst> (another hardware id or tag): one stick for many devices; shared content is stored once',
      ).conflicts(['tufOnly', 'archive']),
    )
    .addOption(
      new Option(
        '--tuf-only',
        'refresh only tuf/ of the bundle in <dst> (new expiry; new root versions after `ferry keys rotate`); <target> must be one it carries',
      ).conflicts(['archive']),
    )
    .option(
      '--from <base-target>',
      'a delta bundle: only the OSTree objects and app layers <target> adds to <base-target>; devices must hold the base',
    )
    .option(
      '--read-back',
      'once written, read the whole bundle back and check every byte (ostree fsck, every blob against its digest), as `ferry verify` does: a second pass over the media',
    )
    .addOption(
      new Option(
        '--format <format>',
        "the stick's TUF format and apps layout: ferry, or fioctl (what `fioctl targets offline-update` writes, apps in apps/apps/ beside apps/blobs/; which stock aklite-offline reads, see README: Foundries compatibility); it must be the factory's (`repo init --format`), the default; another ends in 29",
      ).choices(METADATA_FORMATS),
    )
    .addOption(
      new Option(
        '--rootfs <form>',
        'how the rootfs travels: ostree-repo (the default: ostree_repo/, an object per file, the fioctl layout) or static-delta (one self-contained `ostree static-delta` file, rootfs/<commit>.delta, from nothing or from --from: fewer, larger files, for FAT media); static-delta is for a new ferry-format bundle of one target (with --format fioctl: 29; with --allow-multiple-targets or --tuf-only: 2)',
      ).choices(ROOTFS_FORMS),
    )
    .addOption(
      new Option(
        '--encrypt-to <cert-file>',
        "encrypt the bundle to a recipient (repeat for each): a device's decryption certificate or a fleet certificate, issued by the factory's device CA (`ferry device certify`, `ferry ca fleet-key`). Writes one tar file at <dst> whose content only the recipients' keys decrypt; its metadata stays readable (`ferry show`); signed digests cover the ciphertext",
      )
        .argParser(collect)
        .conflicts(['allowMultipleTargets', 'tufOnly']),
    )
    .addOption(progressFdOption())
    .option('--json', 'print the result as one JSON object')
    .action(
      async (
        targetName: string,
        dst: string,
        options: {
          repo: string;
          tag: string;
          prod?: boolean;
          expiresInDays: number;
          archive?: 'tar' | 'zip';
          allowMultipleTargets?: boolean;
          tufOnly?: boolean;
          from?: string;
          readBack?: boolean;
          format?: MetadataFormat;
          encryptTo?: string[];
          rootfs?: RootfsForm;
          progressFd?: number;
          json?: boolean;
        },
      ) => {
        const progress = progressFor(io, options);
        const result = await withFactoryRepo(options.repo, 'export', (repo) =>
          exportBundle(repo, {
            targetName,
            destination: path.resolve(dst),
            tag: options.tag,
            type: options.prod ? 'prod' : 'ci',
            expiresInDays: options.expiresInDays,
            archive: options.encryptTo === undefined ? options.archive : (options.archive ?? 'tar'),
            encryptTo: options.encryptTo?.map((file) => path.resolve(file)),
            mode: options.tufOnly ? 'tuf-only' : options.allowMultipleTargets ? 'add-target' : 'new',
            progress: progress.listener,
            fromTarget: options.from,
            readBack: options.readBack,
            format: options.format,
            rootfs: options.rootfs,
          }),
        ).finally(() => progress.stop());
        const what = options.tufOnly
          ? `refreshed tuf/ of ${result.destination}`
          : `exported ${result.target} to ${result.destination}`;
        const missing =
          result.offlineSignaturesMissing > 0
            ? `; a device takes it once ${result.offlineSignaturesMissing} more offline signature(s) are added with \`ferry bundle sign\``
            : '';
        setReport(
          {
            outcome: 'OK',
            message: `${what} (carries ${result.targets.join(', ')}; expires ${result.expires}${options.encryptTo === undefined ? '' : `; encrypted to ${options.encryptTo.length} recipient(s)`}); ${options.readBack ? 'read back and verified' : 'verified as written'}${missing}`,
            data: { ...result },
          },
          options.json ?? false,
        );
      },
    );
}
