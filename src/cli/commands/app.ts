import path from 'node:path';
import type { Command } from 'commander';
import { addApp } from '../../apps/workstation/add-app.js';
import { withFactoryRepo } from '../../repo/factory-lock.js';
import type { CommandContext } from '../command-context.js';
import { collect } from '../shared-options.js';

/** app add: store a compose app in the factory repository. */
export function registerAppCommand(program: Command, { setReport }: CommandContext): void {
  const app = program.command('app').description('compose apps of the factory repository');
  app
    .command('add <app>')
    .description('store a compose app content-addressed: its project archive and its images, pinned by digest')
    .requiredOption('--repo <dir>', 'the factory repository')
    .requiredOption(
      '--compose <dir>',
      'the directory holding the compose file (compose.yaml, compose.yml, docker-compose.yaml or docker-compose.yml, in that order) and any files it uses',
    )
    .option(
      '--image <path>',
      "an image the compose file uses: an OCI layout directory or a 'docker save' archive (repeatable)",
      collect,
    )
    .action(async (name: string, options: { repo: string; compose: string; image?: string[] }) => {
      const added = await withFactoryRepo(options.repo, 'app add', (repo) =>
        addApp(repo, {
          name,
          composeDir: path.resolve(options.compose),
          images: options.image ?? [],
        }),
      );
      setReport({ outcome: 'OK', message: `added app ${added.name}: ${added.uri}`, data: { ...added } }, false);
    });
}
