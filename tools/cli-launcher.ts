/**
 * How the command lines start node when run by name: V8's young generation (--max-semi-space-size, in MiB) kept at
 * 2 MiB instead of its default 16. An install or export allocates a little for each of tens of thousands of files,
 * and the default lets the young generation grow to some 30 MiB of the process's memory, a third of the 100 MiB an
 * install may use; collecting it more often costs no measurable time. Node takes the flag only on its command
 * line, so the file starts as a shell script that runs node on itself with it (exec: the same process, its signals
 * and descriptors); node skips the first line and reads the second as a string and a comment.
 */
export const NODE_FLAGS = ['--max-semi-space-size=2'];
export const LAUNCHER = `#!/bin/sh\n":" //; exec node ${NODE_FLAGS.join(' ')} "$0" "$@"\n`;
