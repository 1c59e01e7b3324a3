import { promises as fs } from 'node:fs';
import path from 'node:path';
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
   * sync: that rename is then durable in the filesystem's journal only. Bootloaders read ext4 without replaying its
   * journal (U-Boot's ext4load, GRUB), so after a power cut they read the previous boot configuration, whose
   * `ostree=/ostree/boot.N/…` the kernel (which does replay the journal of the root filesystem) no longer finds: the
   * machine never boots again. Freezing and thawing /boot writes its journal back into place, so the bootloader reads
   * what Linux reads. Only for a /boot that is a filesystem of its own (a test sysroot on the host is left alone).
   */
  private async settleBootPartition(): Promise<void> {
    const boot = path.join(this.path, 'boot');
    const [bootStat, sysrootStat] = await Promise.all([fs.stat(boot).catch(() => null), fs.stat(this.path)]);
    if (bootStat === null || bootStat.dev === sysrootStat.dev) return;
    // One shell runs both, so that the thaw still happens if ferry itself is killed in between. A filesystem that
    // cannot be frozen is left as it is, as OSTree does; one that was frozen must be thawed, or the step fails.
    await runTool('sh', [
      '-c',
      'fsfreeze --freeze "$1" 2>/dev/null || exit 0; exec fsfreeze --unfreeze "$1"',
      'sh',
      boot,
    ]);
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
