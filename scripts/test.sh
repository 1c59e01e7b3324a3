#!/usr/bin/env bash
# Set-up, then the whole test suite (both lanes) on node's built-in test runner, with the real ostree and bootloader
# tools.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec bash scripts/test-lane.sh all
