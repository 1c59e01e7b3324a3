/**
 * How the command lines start node when run by name. An install or export handles tens of thousands of files, a
 * little garbage for each, and with node's defaults its memory grows by some 60 MiB that it never needs at once
 * (measured on an install of a tar bundle of 50,000 files: 198 MiB before, 83 MiB with these and the fixes in the
 * code). Node takes these only on its command line, or glibc from the environment at start, so the file starts as
 * a shell script that runs node on itself (exec: the same process, its signals and descriptors); node skips the
 * first line and reads the second as a string and a comment.
 *
 * - `--max-semi-space-size=2`: V8's young generation at 2 MiB instead of 16. The default grows to some 30 MiB.
 * - `--heap-growing-percent=50`: the old generation is collected once it grows by half since the last collection,
 *   instead of up to four times: the objects of each file that outlive a young collection (those of a write in
 *   flight) otherwise pile up to some 20 MiB before they are collected.
 * - `MALLOC_MMAP_THRESHOLD_=65536`: glibc gives allocations of 64 KiB and more (the read buffers of files and
 *   archives) their own mapping, returned to the system when freed. By default the threshold rises with the first
 *   such buffer freed, and later ones come from the heap, where freed buffers stay resident among live allocations
 *   (some 20 MiB). A value in the environment already is kept.
 */
export const NODE_FLAGS = ['--max-semi-space-size=2', '--heap-growing-percent=50'];
export const MALLOC_MMAP_THRESHOLD = 65536;
export const LAUNCHER =
  `#!/bin/sh\n":" //; export MALLOC_MMAP_THRESHOLD_=\${MALLOC_MMAP_THRESHOLD_:-${MALLOC_MMAP_THRESHOLD}}; ` +
  `exec node ${NODE_FLAGS.join(' ')} "$0" "$@"\n`;
