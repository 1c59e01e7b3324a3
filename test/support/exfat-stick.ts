import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { tempDir } from './factory.js';

/** An exFAT filesystem mounted through FUSE (exfat-fuse) from an image on a loop device: a technician's stick. */
export interface ExfatStick {
  readonly mountPoint: string;
  /** The stick's image file: once unmounted, a disk a VM can take. */
  readonly image: string;
  unmount(): void;
}

const run = (command: string, args: readonly string[]) => spawnSync(command, args, { encoding: 'utf8' });

/**
 * Makes and mounts an exFAT stick of `sizeMiB`. The kernel here has no exfat module; exfat-fuse (Debian `exfat-fuse`,
 * formatted by `mkfs.exfat` of `exfatprogs`) mounts it from a loop device, as it would a real stick. Returns
 * undefined where that cannot be done; under CI=true that is a failure, never a skip.
 */
export async function mountExfatStick(sizeMiB: number): Promise<ExfatStick | undefined> {
  const dir = await tempDir('exfat');
  const image = path.join(dir, 'stick.img');
  const mountPoint = path.join(dir, 'mnt');
  const steps: string[] = [];
  const step = (command: string, args: readonly string[]): string | undefined => {
    const result = run(command, args);
    steps.push(`${command} ${args.join(' ')}: ${result.error?.message ?? result.stderr.trim()}`);
    return result.status === 0 ? result.stdout.trim() : undefined;
  };
  let loop: string | undefined;
  const ok =
    step('truncate', ['-s', `${sizeMiB}M`, image]) !== undefined &&
    step('mkdir', ['-p', mountPoint]) !== undefined &&
    step('mkfs.exfat', [image]) !== undefined &&
    (loop = step('losetup', ['--find', '--show', image])) !== undefined &&
    step('mount.exfat-fuse', [loop, mountPoint]) !== undefined;
  if (!ok) {
    if (loop !== undefined) run('losetup', ['--detach', loop]);
    assert.notEqual(process.env['CI'], 'true', `cannot mount an exFAT stick in CI: ${steps.join(' | ')}`);
    return undefined;
  }
  return {
    mountPoint,
    image,
    unmount() {
      run('umount', [mountPoint]);
      run('losetup', ['--detach', loop!]);
    },
  };
}
