import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { openBundleSource } from '../../bundle/format/bundle-source.js';
import { describeBundle, inspectBundle } from '../../bundle/workstation/inspect.js';
import type { CommandContext } from '../command-context.js';

/** show: what a bundle carries: its roles with their signatures and expiry, its targets and apps. */
export function registerShowCommand(program: Command, { setReport }: CommandContext): void {
  program
    .command('show <bundle>')
    .description(
      'what a bundle carries: type, tags, every role with its version, expiry and signatures (present, threshold, missing), targets and apps',
    )
    .option('--json', 'print the result as one JSON object')
    .action(async (bundlePath: string, options: { json?: boolean }) => {
      const source = await openBundleSource(path.resolve(bundlePath), os.tmpdir());
      try {
        const summary = await inspectBundle(
          source.bundle,
          new Date(),
          source.sealed === undefined
            ? undefined
            : {
                recipients: await source.sealed.recipients(),
                fileBytes: (await fs.stat(source.sealed.file)).size,
              },
        );
        setReport({ outcome: 'OK', message: describeBundle(summary), data: { ...summary } }, options.json ?? false);
      } finally {
        await source.close();
      }
    });
}
