import { promises as fs } from 'node:fs';
import path from 'node:path';
import { runTool } from './tool.js';

/**
 * Flushes everything written to the filesystem that holds `target`: syncfs(2), through coreutils' `sync -f`. One
 * flush at the end of a long write costs the media one pass; an fsync per file (tens of thousands of OSTree
 * objects) costs a stall per file, and on a USB stick that is most of the time. The short option, because busybox's
 * `sync` (on a small device or a rescue system) knows `-f` but not `--file-system`.
 */
export async function syncFilesystem(target: string): Promise<void> {
  await runTool('sync', ['-f', target]);
}

/**
 * Writes the journal of the filesystem mounted at `mountPoint` back into place: FIFREEZE then FITHAW, through
 * `fsfreeze`. After a sync an ext4 change (a rename above all) may be durable in the journal only; Linux replays it
 * at the next mount, but a bootloader reading the partition (U-Boot's ext4load, GRUB) does not, and would read the
 * state from before it. Nothing is done when `mountPoint` is not the root of a filesystem of its own (a test tree on
 * the host's filesystem is never frozen), nor when the filesystem cannot be frozen (as OSTree does); one that was
 * frozen must be thawed, or this fails. One shell runs both, so that the thaw happens even if ferry is killed.
 */
export async function settleFilesystemJournal(mountPoint: string): Promise<void> {
  const [own, parent] = await Promise.all([
    fs.stat(mountPoint).catch(() => null),
    fs.stat(path.dirname(path.resolve(mountPoint))),
  ]);
  if (own === null || own.dev === parent.dev) return;
  await runTool('sh', [
    '-c',
    'fsfreeze --freeze "$1" 2>/dev/null || exit 0; exec fsfreeze --unfreeze "$1"',
    'sh',
    mountPoint,
  ]);
}

/** The same for the filesystem that holds `file`, wherever it is mounted (e.g. /boot/grub/grubenv on a /boot of its own). */
export async function settleFilesystemJournalOf(file: string): Promise<void> {
  let dir = path.dirname(path.resolve(file));
  const dev = (await fs.stat(dir)).dev;
  // Up to the top directory of that filesystem: its mount point.
  while (dir !== path.dirname(dir) && (await fs.stat(path.dirname(dir))).dev === dev) dir = path.dirname(dir);
  await settleFilesystemJournal(dir);
}
