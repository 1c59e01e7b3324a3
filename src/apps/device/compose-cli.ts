import path from 'node:path';

/** One compose invocation: the program, its arguments and what it needs in its environment. */
export interface ComposeInvocation {
  readonly file: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
}

/**
 * The compose command line, v1 or v2, chosen as aktualizr-lite chooses it from `docker_compose_bin`: a file named
 * `docker` is the docker CLI, whose `compose` plugin (v2) takes the project; anything else is the docker-compose v1
 * binary. The engine's address goes where each reads it: v1 reads DOCKER_HOST; v2 is a docker CLI subcommand, so the
 * CLI's own `-H` comes before `compose` (DOCKER_HOST is set too, for what the plugin starts itself). Project name and
 * compose file (`-p`, `-f`) are options of the compose command in both, and the subcommands ferry uses (`up -d
 * --remove-orphans`, `down --remove-orphans`) take the same arguments in both.
 */
export class ComposeCli {
  readonly version: 1 | 2;

  constructor(
    readonly bin: string,
    readonly host: string,
  ) {
    this.version = path.basename(bin) === 'docker' ? 2 : 1;
  }

  command(project: string, composeFile: string, args: readonly string[]): ComposeInvocation {
    const projectArgs = ['-p', project, '-f', composeFile, ...args];
    const env = { DOCKER_HOST: this.host };
    if (this.version === 1) return { file: this.bin, args: projectArgs, env };
    return { file: this.bin, args: ['-H', this.host, 'compose', ...projectArgs], env };
  }
}
