import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { promises as fs, openSync, closeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * A private dockerd for one simulated device: its own socket, data root and exec root, started with the flags of
 * reference §7 and stopped by its pid. It never touches a system-wide engine. Under CI=true a daemon that will not
 * start fails the test, like any other missing part.
 */
export class PrivateDockerd {
  private child: ChildProcess | undefined;

  private constructor(readonly dir: string) {}

  get socket(): string {
    return path.join(this.dir, 'd.sock');
  }

  get host(): string {
    return `unix://${this.socket}`;
  }

  static async start(): Promise<PrivateDockerd> {
    // Unix socket paths are limited to 108 bytes: keep the directory short.
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fd-'));
    registerCleanup(dir);
    const daemon = new PrivateDockerd(dir);
    await daemon.launch();
    return daemon;
  }

  private async launch(): Promise<void> {
    const log = openSync(path.join(this.dir, 'dockerd.log'), 'a');
    this.child = spawn(
      'dockerd',
      [
        '--iptables=false',
        '--ip6tables=false',
        '--bridge=none',
        '--storage-driver=vfs',
        '--shutdown-timeout=3',
        `--data-root=${path.join(this.dir, 'data')}`,
        `--exec-root=${path.join(this.dir, 'exec')}`,
        `-H`,
        this.host,
        `--pidfile=${path.join(this.dir, 'd.pid')}`,
      ],
      { stdio: ['ignore', log, log], detached: false },
    );
    closeSync(log);
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (this.child.exitCode !== null) break;
      if (
        spawnSync('docker', ['-H', this.host, 'version', '--format', '{{.Server.Version}}'], { stdio: 'ignore' })
          .status === 0
      )
        return;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const tail = await fs.readFile(path.join(this.dir, 'dockerd.log'), 'utf8').catch(() => '');
    await this.stop();
    throw new Error(`dockerd did not start on ${this.host}:\n${tail.split('\n').slice(-15).join('\n')}`);
  }

  /** Stops the daemon by its pid (SIGTERM, then SIGKILL), as a power cut or `systemctl stop docker` would. */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child === undefined || child.exitCode !== null || child.pid === undefined) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(timer);
  }

  /** `systemctl restart docker`: the same data root, so images, volumes and restartable containers survive. */
  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }

  docker(...args: string[]): string {
    const result = spawnSync('docker', ['-H', this.host, ...args], { encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`docker ${args.join(' ')}: ${result.stderr}`);
    return result.stdout;
  }

  /** Removes every container and volume (images stay): no device's apps are left on the engine. */
  empty(): void {
    const ids = this.docker('ps', '-aq')
      .split('\n')
      .filter((id) => id !== '');
    if (ids.length > 0) this.docker('rm', '-f', ...ids);
    const volumes = this.docker('volume', 'ls', '-q')
      .split('\n')
      .filter((id) => id !== '');
    if (volumes.length > 0) this.docker('volume', 'rm', '-f', ...volumes);
  }

  /** `name image` of every running container, sorted. */
  running(): string[] {
    return this.docker('ps', '--format', '{{.Names}} {{.Image}}')
      .split('\n')
      .filter((line) => line !== '')
      .sort();
  }

  images(): string[] {
    return this.docker('images', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}')
      .split('\n')
      .filter((line) => line !== '')
      .sort();
  }
}

const daemons: string[] = [];
function registerCleanup(dir: string): void {
  daemons.push(dir);
}
process.once('exit', () => {
  for (const dir of daemons) spawnSync('rm', ['-rf', dir]);
});

/** Starts a daemon that is stopped when the test file is done. */
export async function startDockerd(after: (fn: () => Promise<void>) => void): Promise<PrivateDockerd> {
  const daemon = await PrivateDockerd.start();
  after(() => daemon.stop());
  return daemon;
}
