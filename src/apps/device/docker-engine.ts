import { execa } from 'execa';
import { FerryError, describeCause } from '../../errors.js';
import { runTool } from '../../util/tool.js';
import { ComposeCli } from './compose-cli.js';

export interface ContainerState {
  readonly id: string;
  readonly name: string;
  readonly service: string;
  readonly image: string;
  readonly running: boolean;
  readonly restarting: boolean;
  readonly exitCode: number;
  readonly status: string;
  readonly startedAt: Date;
  readonly restartCount: number;
  /** What the engine's healthcheck says (`docker inspect` .State.Health.Status); null: the container has none. */
  readonly health: ContainerHealth | null;
}

export type ContainerHealth = 'starting' | 'healthy' | 'unhealthy';

/**
 * A thin adapter over the container engine: the `docker` CLI and compose (v1 or v2, see compose-cli.ts) for
 * projects, skopeo for loading images from an OCI layout. One engine per device, reached at `host` (unix://…).
 * Containers are found by their compose labels, never by name: v1 names them `app_svc_1`, v2 `app-svc-1`.
 */
export class DockerEngine {
  readonly compose: ComposeCli;

  constructor(
    readonly host: string,
    /** `[pacman] docker_compose_bin`: the docker-compose v1 binary, or the `docker` CLI for compose v2. */
    composeBin = 'docker-compose',
  ) {
    this.compose = new ComposeCli(composeBin, host);
  }

  private docker(args: readonly string[]): Promise<string> {
    return runTool('docker', ['-H', this.host, ...args]);
  }

  private runCompose(project: string, file: string, args: readonly string[]): Promise<string> {
    const command = this.compose.command(project, file, args);
    return runTool(command.file, command.args, { env: command.env });
  }

  /** Whether the engine answers, and if not, why: a fact for the planners. */
  async probe(): Promise<{ reachable: true } | { reachable: false; reason: string; cause: unknown }> {
    try {
      await this.docker(['version', '--format', '{{.Server.Version}}']);
      return { reachable: true };
    } catch (error) {
      return {
        reachable: false,
        reason: `the container engine at ${this.host} cannot be reached: ${describeCause(error)}`,
        cause: error,
      };
    }
  }

  async ensureReachable(): Promise<void> {
    const probe = await this.probe();
    if (!probe.reachable) throw new FerryError('ENGINE_UNAVAILABLE', probe.reason, { cause: probe.cause });
  }

  async hasImage(reference: string): Promise<boolean> {
    try {
      await this.docker(['image', 'inspect', '--format', '{{.Id}}', reference]);
      return true;
    } catch {
      return false;
    }
  }

  /** Loads an image from an OCI layout whose blobs live in a shared blob directory. */
  async loadImage(layoutDir: string, sharedBlobDir: string, reference: string): Promise<void> {
    await runTool('skopeo', [
      'copy',
      '--quiet',
      '--src-shared-blob-dir',
      sharedBlobDir,
      '--dest-daemon-host',
      this.host,
      `oci:${layoutDir}`,
      `docker-daemon:${reference}`,
    ]);
  }

  async up(project: string, file: string): Promise<void> {
    await this.runCompose(project, file, ['up', '-d', '--remove-orphans']);
  }

  /** Stops and removes the project's containers (its volumes stay). */
  async down(project: string, file: string): Promise<void> {
    await this.runCompose(project, file, ['down', '--remove-orphans']);
  }

  /** Removes every container of a project by its compose label, for when its compose file is gone. */
  async removeProjectContainers(project: string): Promise<void> {
    const ids = (await this.docker(['ps', '-aq', '--filter', `label=com.docker.compose.project=${project}`]))
      .split('\n')
      .filter((id) => id !== '');
    if (ids.length > 0) await this.docker(['rm', '-f', ...ids]);
  }

  async projects(): Promise<string[]> {
    const out = await this.docker(['ps', '-a', '--format', '{{.Label "com.docker.compose.project"}}']);
    return [...new Set(out.split('\n').filter((name) => name !== ''))];
  }

  async containers(project: string): Promise<ContainerState[]> {
    const ids = (await this.docker(['ps', '-aq', '--filter', `label=com.docker.compose.project=${project}`]))
      .split('\n')
      .filter((id) => id !== '');
    if (ids.length === 0) return [];
    const out = await this.docker(['inspect', '--format', '{{json .}}', ...ids]);
    return out
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => {
        const info = JSON.parse(line) as {
          Id: string;
          Name: string;
          Config: { Image: string; Labels: Record<string, string> };
          State: {
            Running: boolean;
            Restarting: boolean;
            ExitCode: number;
            Status: string;
            StartedAt: string;
            Health?: { Status?: string };
          };
          RestartCount: number;
        };
        return {
          id: info.Id,
          name: info.Name.replace(/^\//, ''),
          service: info.Config.Labels['com.docker.compose.service'] ?? '',
          image: info.Config.Image,
          running: info.State.Running,
          restarting: info.State.Restarting,
          exitCode: info.State.ExitCode,
          status: info.State.Status,
          startedAt: new Date(info.State.StartedAt),
          restartCount: info.RestartCount,
          health: healthOf(info.State.Health?.Status),
        };
      });
  }

  /**
   * The last `lines` lines a container wrote (stdout and stderr as they came), for the log snippet of a failure; none
   * when the engine cannot give them.
   */
  async logTail(container: string, lines: number): Promise<string[]> {
    const result = await execa('docker', ['-H', this.host, 'logs', '--tail', String(lines), container], {
      stdin: 'ignore',
      all: true,
      reject: false,
      encoding: 'utf8',
    });
    if (result.failed) return [];
    return (result.all ?? '')
      .split('\n')
      .filter((line) => line !== '')
      .slice(-lines);
  }
}

function healthOf(status: string | undefined): ContainerHealth | null {
  return status === 'starting' || status === 'healthy' || status === 'unhealthy' ? status : null;
}
