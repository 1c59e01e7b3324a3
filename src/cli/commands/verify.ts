import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { openBundleSource } from '../../bundle/format/bundle-source.js';
import { verifyBundle } from '../../bundle/workstation/verify-bundle.js';
import { progressFor, type CommandContext } from '../command-context.js';
import { progressFdOption } from '../shared-options.js';

/** verify: a release engineer's check that a device would take a bundle, before it ships. */
export function registerVerifyCommand(program: Command, { io, setReport }: CommandContext): void {
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
}
