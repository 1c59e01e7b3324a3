import path from 'node:path';
import { Option, type Command } from 'commander';
import { addTarget, parseAppOption, parseStatusGoalOption } from '../../repo/add-target.js';
import { FerryError } from '../../errors.js';
import { withFactoryRepo } from '../../repo/factory-lock.js';
import type { RestartPolicy } from '../../tuf/target.js';
import type { CommandContext } from '../command-context.js';
import { collect } from '../shared-options.js';

/** target add: record an OSTree target in the factory repository. */
export function registerTargetCommand(program: Command, { setReport }: CommandContext): void {
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
    .option(
      '--status-goal <app=goal>',
      'the status goal of a pinned app, running or healthy (repeatable; default: healthy when a service of its compose file has a healthcheck, else running)',
      collect,
    )
    .action(
      async (options: {
        app?: string[];
        statusGoal?: string[];
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
        const apps = (options.app ?? []).map((text) => ({
          restartPolicy: options.restartPolicy,
          ...parseAppOption(text),
        }));
        const goals = new Map((options.statusGoal ?? []).map(parseStatusGoalOption).map((g) => [g.name, g.statusGoal]));
        for (const name of goals.keys())
          if (!apps.some((app) => app.name === name))
            throw new FerryError('USAGE', `--status-goal ${name}: no --app ${name} is given`);
        const result = await withFactoryRepo(options.repo, 'target add', (repo) =>
          addTarget(repo, {
            name: options.name,
            version: options.version,
            hardwareIds: options.hardwareId,
            tags: options.tag,
            commit: options.commit,
            ref: options.ref,
            ostreeRepo: options.ostreeRepo === undefined ? undefined : path.resolve(options.ostreeRepo),
            apps: apps.map((app) => ({ ...app, statusGoal: goals.get(app.name) })),
          }),
        );
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
}
