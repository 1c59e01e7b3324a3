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
