import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { openBundleSource } from '../../bundle/bundle-source.js';
import { describeBundle, inspectBundle } from '../../bundle/inspect.js';
import { packBundleDirectory } from '../../bundle/pack-bundle.js';
import { signBundle } from '../../bundle/sign-bundle.js';
import { verifyBundle } from '../../bundle/verify-bundle.js';
import { progressFdOption, progressFor, type CommandContext } from '../command-context.js';

/** show, verify and bundle sign: a release engineer's checks of a stick before it ships. */
export function registerBundleCommands(program: Command, { io, setReport }: CommandContext): void {
  program
    .command('show <bundle>')
    .description(
      'what a bundle carries: type, tags, every role with its version, expiry and signatures (present, threshold, missing), targets and apps',
    )
    .option('--json', 'print the result as one JSON object')
    .action(async (bundlePath: string, options: { json?: boolean }) => {
      const source = await openBundleSource(path.resolve(bundlePath), os.tmpdir());
      try {
        const summary = await inspectBundle(source.bundle);
        setReport({ outcome: 'OK', message: describeBundle(summary), data: { ...summary } }, options.json ?? false);
      } finally {
        await source.close();
      }
    });

  program
    .command('verify <bundle>')
    .description(
      'check a bundle before it ships: every signature and expiry from a trusted root, every target, OSTree object and app blob; exit 0 only if a device would take it',
    )
    .option(
      '--trusted-root <file>',
      "the root.json devices trust (default: the bundle's own 1.root.json, which proves only self-consistency)",
    )
    .addOption(progressFdOption())
    .option('--json', 'print the result as one JSON object')
    .action(async (bundlePath: string, options: { trustedRoot?: string; progressFd?: number; json?: boolean }) => {
      const source = await openBundleSource(path.resolve(bundlePath), os.tmpdir());
      const progress = progressFor(io, options);
      try {
        const trustedRoot = options.trustedRoot ?? path.join(source.bundle.tufDir, '1.root.json');
        const verified = await verifyBundle(source.bundle, {
          trustedRoot: path.resolve(trustedRoot),
          progress: progress.listener,
        }).finally(() => progress.stop());
        const names = verified.targets.map((target) => `${target.name} (version ${target.version})`).join(', ');
        setReport(
          {
            outcome: 'OK',
            message: `verified: a "${verified.bundle.type}" bundle for tag ${verified.bundle.tag}, root version ${verified.rootVersion}, expires ${verified.bundle.expires.toISOString()}; targets ${names}; ${verified.blobsChecked} app blobs checked; ${verified.sizeBytes} bytes`,
            data: {
              type: verified.bundle.type,
              tag: verified.bundle.tag,
              rootVersion: verified.rootVersion,
              targets: verified.targets.map((target) => ({
                name: target.name,
                version: target.version,
                hardwareIds: target.hardwareIds,
                commit: target.commit,
              })),
              blobsChecked: verified.blobsChecked,
              sizeBytes: verified.sizeBytes,
              trustedRoot,
            },
          },
          options.json ?? false,
        );
      } finally {
        await source.close();
      }
    });

  const bundleCommand = program
    .command('bundle')
    .description('changes to a bundle directory, and packing one into a single file');
  bundleCommand
    .command('sign <bundle>')
    .description("add one targets-key signature to the bundle's bundle-targets.json (offline keys countersign prod)")
    .requiredOption('--key <file>', 'the private targets key (PKCS#8 PEM), e.g. one `ferry keys add-offline` wrote')
    .option('--json', 'print the result as one JSON object')
    .action(async (bundlePath: string, options: { key: string; json?: boolean }) => {
      const result = await signBundle(path.resolve(bundlePath), path.resolve(options.key));
      const offline =
        result.offline === null
          ? ''
          : `; offline signatures ${result.offline.valid}/${result.offline.threshold}${result.offline.valid >= result.offline.threshold ? '' : ` (${result.offline.threshold - result.offline.valid} more needed)`}`;
      setReport(
        {
          outcome: 'OK',
          message: `${result.added ? 'signed' : 'already signed by'} key ${result.keyId}${offline}`,
          data: { ...result },
        },
        options.json ?? false,
      );
    });

  bundleCommand
    .command('pack <dir> <file>')
    .description(
      'write a finished bundle directory (a signed prod bundle, a stick for many targets) as one file, a tar or a zip as <file> is named (.tar, .zip): only tuf/, ostree_repo/ and apps/, only files and directories (what install accepts); written to <file>.partial, read back as install reads it and compared file by file, flushed, then renamed. Signatures are not checked here: `ferry verify <file>` does',
    )
    .option('--json', 'print the result as one JSON object')
    .action(async (dir: string, file: string, options: { json?: boolean }) => {
      const result = await packBundleDirectory(path.resolve(dir), path.resolve(file));
      setReport(
        {
          outcome: 'OK',
          message: `packed ${result.files} files (${result.bytes} bytes) into ${result.archive}; read back and compared`,
          data: { ...result },
        },
        options.json ?? false,
      );
    });
}
