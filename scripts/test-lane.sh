#!/usr/bin/env bash
# Runs the built tests of a lane on node's test runner.
#   fast:     every test file but the *.slow.test.js ones (the decisions, formats, TUF, readers and the command-line
#             surface), three files at a time: they wait on fsync and child processes more than they compute.
#   slow:     the *.slow.test.js files that start container engines or write 4 GiB files, two files at a time: each
#             spends most of its time waiting for an engine, a testing window or the disk.
#   realboot: the files of test/realboot/, one at a time: each already runs its two machines side by side, and a
#             machine under QEMU's emulation needs a core of its own to meet its timeouts.
#   all:      the three lanes in that order; it runs them all, and fails if any fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

run_lane() {
  local files concurrency
  case "$1" in
    fast)
      concurrency=3
      mapfile -t files < <(find dist/test -name '*.test.js' ! -name '*.slow.test.js' | sort)
      ;;
    slow)
      concurrency=2
      mapfile -t files < <(find dist/test -name '*.slow.test.js' ! -path 'dist/test/realboot/*' | sort)
      ;;
    realboot)
      concurrency=1
      mapfile -t files < <(find dist/test/realboot -name '*.slow.test.js' | sort)
      ;;
  esac
  node --test --test-concurrency="$concurrency" --test-reporter=spec "${files[@]}"
}

case "${1:-all}" in
  fast | slow | realboot) run_lane "$1" ;;
  all)
    status=0
    for lane in fast slow realboot; do
      run_lane "$lane" || status=$?
    done
    exit "$status"
    ;;
  *)
    echo "usage: scripts/test-lane.sh fast|slow|realboot|all" >&2
    exit 2
    ;;
esac
