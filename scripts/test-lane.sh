#!/usr/bin/env bash
# Runs the built tests of one lane on node's test runner. "fast": every test file but the *.slow.test.js ones (the
# decisions, formats, TUF, readers and the command-line surface); "all": every test file.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
case "${1:-all}" in
  fast) mapfile -t files < <(find dist/test -name '*.test.js' ! -name '*.slow.test.js' | sort) ;;
  all) mapfile -t files < <(find dist/test -name '*.test.js' | sort) ;;
  *)
    echo "usage: scripts/test-lane.sh fast|all" >&2
    exit 2
    ;;
esac
exec node --test --test-reporter=spec "${files[@]}"
