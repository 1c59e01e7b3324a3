import path from 'node:path';
import type { Command } from 'commander';
import { packBundleDirectory } from '../../bundle/workstation/pack-bundle.js';
import { signBundle } from '../../bundle/workstation/sign-bundle.js';
import type { CommandContext } from '../command-context.js';

/** bundle sign and bundle pack: changes to a finished bundle directory, and packing it into one file. */
export function registerBundleCommand(program: Command, { setReport }: CommandContext): void {
  const bundleCommand = program
    .command('bundle')
    .description('changes to a bundle directory, and packing one into a single file');
  bundleCommand
    .command('sign <bundle>')
    .description("add one targets-key signature to the bundle's bundle-targets.json (offline keys countersign prod)")
    .requiredOption(
      '--key <file>',
      'the private targets key (PKCS#8 PEM), e.g. one `ferry keys add-offline` wrote, or a signer.json naming one in a PKCS#11 token or behind a signing command (README: Keys in an HSM)',
    )
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
