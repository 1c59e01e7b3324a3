import path from 'node:path';
import { Option, type Command } from 'commander';
import { addApp } from '../../apps/add-app.js';
import { addTarget, parseAppOption } from '../../repo/add-target.js';
import { initFactoryRepo, openFactoryRepo } from '../../repo/factory-repo.js';
import type { RestartPolicy } from '../../tuf/target.js';
import { collect, positiveInteger, type CommandContext } from '../command-context.js';

/** repo init, target add, app add: the factory repository on the workstation. */
export function registerRepoCommands(program: Command, { setReport }: CommandContext): void {
  const repo = program.command('repo').description('the factory repository on the workstation');
  repo
    .command('init <dir>')
    .description('create the four TUF roles (ed25519), 1.root.json, an archive OSTree repo and apps/')
    .addOption(
      new Option('--root-expires-in-days <n>', 'how long root.json stays valid')
        .default(365)
        .argParser(positiveInteger('--root-expires-in-days')),
    )
    .option('--factory <name>', 'the factory name in app uris (apps.ferry.local/<factory>/<app>)', 'factory')
    .action(async (dir: string, options: { rootExpiresInDays: number; factory: string }) => {
      await initFactoryRepo(path.resolve(dir), {
        rootExpiresInDays: options.rootExpiresInDays,
        factory: options.factory,
      });
      setReport({ outcome: 'OK', message: `created factory repository ${path.resolve(dir)}` }, false);
    });

  const target = program.command('target').description('targets of the factory repository');
  target
    .command('add')
    .description('record an OSTree target <name>-<version>; re-signs targets, snapshot and timestamp')
    .requiredOption('--repo <dir>', 'the factory repository')
    .requiredOption('--name <name>', 'target base name (the target is named <name>-<version>)')
    .requiredOption('--version <n>', 'target version, a decimal number')
    .requiredOption('--hardware-id <id>', 'hardware id the target is for (repeatable)', collect)
    .requiredOption('--tag <tag>', 'tag the target carries (repeatable)', collect)
    .option('--commit <sha>', 'the OSTree commit')
    .option('--ref <ref>', 'an OSTree ref that names the commit')
    .option('--ostree-repo <dir>', 'copy the commit from this OSTree repo into the factory repo')
    .option(
      '--app <app[@sha256:digest][=policy]>',
      'pin an app (repeatable; default version: the latest added)',
      collect,
    )
    .addOption(
      new Option('--restart-policy <policy>', 'restart policy of the --app given without =policy')
        .choices(['container', 'system'])
        .default('container'),
    )
    .action(
      async (options: {
        app?: string[];
        restartPolicy: RestartPolicy;
        repo: string;
        name: string;
        version: string;
        hardwareId: string[];
        tag: string[];
        commit?: string;
        ref?: string;
        ostreeRepo?: string;
      }) => {
        const result = await addTarget(await openFactoryRepo(path.resolve(options.repo)), {
          name: options.name,
          version: options.version,
          hardwareIds: options.hardwareId,
          tags: options.tag,
          commit: options.commit,
          ref: options.ref,
          ostreeRepo: options.ostreeRepo === undefined ? undefined : path.resolve(options.ostreeRepo),
          apps: (options.app ?? []).map((text) => ({ restartPolicy: options.restartPolicy, ...parseAppOption(text) })),
        });
        setReport(
          {
            outcome: 'OK',
            message: result.unchanged
              ? `target ${result.name} already recorded (commit ${result.commit})`
              : `added target ${result.name} (commit ${result.commit})`,
            data: result,
          },
          false,
        );
      },
    );

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
      const added = await addApp(await openFactoryRepo(path.resolve(options.repo)), {
        name,
        composeDir: path.resolve(options.compose),
        images: options.image ?? [],
      });
      setReport({ outcome: 'OK', message: `added app ${added.name}: ${added.uri}`, data: { ...added } }, false);
    });
}
