#!/usr/bin/env bash
# Set-up, then the whole test suite on node's built-in test runner, with the real ostree and bootloader tools.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
mapfile -t files < <(find dist/test -name '*.test.js' | sort)
exec node --test --test-reporter=spec "${files[@]}"
