import { promises as fs } from 'node:fs';
import path from 'node:path';
import { settleFilesystemJournal } from '../util/sync-filesystem.js';
import { runTool } from '../util/tool.js';
import { OstreeRepo } from './ostree-repo.js';

export interface Deployment {
  readonly index: number;
  readonly os: string;
  readonly commit: string;
  readonly serial: number;
}

/** A thin adapter over `ostree admin` for one sysroot directory (`/sysroot` on hardware, a directory in the sim). */
export class Sysroot {
  constructor(
    readonly path: string,
    readonly os: string,
  ) {}

  get repo(): OstreeRepo {
    return new OstreeRepo(path.join(this.path, 'ostree', 'repo'));
  }

  private admin(args: readonly string[]): Promise<string> {
    return runTool('ostree', ['admin', `--sysroot=${this.path}`, ...args]);
  }

  async initialize(): Promise<void> {
    await fs.mkdir(this.path, { recursive: true });
    await this.admin(['init-fs', this.path]);
    await this.admin(['os-init', this.os]);
  }

  /** Deploys `commit` as the new default; ostree keeps the current default as the rollback deployment. */
  async deploy(commit: string): Promise<void> {
    await this.admin(['deploy', `--os=${this.os}`, commit]);
    await this.settleBootPartition();
  }

  async undeploy(index: number): Promise<void> {
    await this.admin(['undeploy', String(index)]);
    await this.settleBootPartition();
  }

  /**
   * The last thing `ostree admin deploy` and `undeploy` do is swap the `loader` symlink on /boot, after their own
   * sync: that rename is then durable in the filesystem's journal only, and a bootloader that reads the partition
   * without replaying it boots the previous configuration, whose `ostree=/ostree/boot.N/…` Linux (which replays the
   * journal of the root filesystem) has removed: after a power cut the machine never boots again.
   */
  private async settleBootPartition(): Promise<void> {
    await settleFilesystemJournal(path.join(this.path, 'boot'));
  }

  /** Deployments in boot order: index 0 is the default, index 1 the rollback. */
  async deployments(): Promise<Deployment[]> {
    const out = await this.admin(['status']);
    const deployments: Deployment[] = [];
    for (const line of out.split('\n')) {
      const match = /^[ *]*(\S+)\s+([0-9a-f]{64})\.(\d+)/.exec(line);
      if (match === null) continue;
      deployments.push({ index: deployments.length, os: match[1]!, commit: match[2]!, serial: Number(match[3]) });
    }
    return deployments;
  }

  deploymentDir(deployment: Pick<Deployment, 'os' | 'commit' | 'serial'>): string {
    return path.join(
      this.path,
      'ostree',
      'deploy',
      deployment.os,
      'deploy',
      `${deployment.commit}.${deployment.serial}`,
    );
  }
}
