#!/usr/bin/env bash
# The ferry demo: a factory repository with two rootfs versions, a simulated device on v1, a bundle for v2 in
# bundles/, then install -> reboot -> run on the device, with every exit code shown.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh

ferry() { node dist/src/cli/ferry.js "$@"; }
work=.demo
bundle=bundles/demo-v2
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() {
  printf '$ ferry %s\n' "$*"
  set +e
  ferry "$@"
  code=$?
  set -e
  printf '   -> exit code %s\n' "$code"
}
expect() {
  if [[ $code -ne $1 ]]; then
    echo "demo: expected exit code $1, got $code" >&2
    exit 1
  fi
}

# ostree marks deployment directories immutable; a previous demo run left some behind.
[[ -d $work ]] && chattr -R -i "$work" 2>/dev/null || true
rm -rf "$work" "$bundle"
mkdir -p "$work" bundles

step "Build two rootfs versions (busybox-static, a kernel stub and os-release) as OSTree commits"
show sim rootfs --ostree-repo "$work/build" --branch demo/v1 --version 1; expect 0
show sim rootfs --ostree-repo "$work/build" --branch demo/v2 --version 2; expect 0

step "Create the factory repository and record both targets"
show repo init "$work/factory"; expect 0
show target add --repo "$work/factory" --name demo-lmp --version 1 --hardware-id ferry-sim --tag main --ref demo/v1 --ostree-repo "$work/build"; expect 0
show target add --repo "$work/factory" --name demo-lmp --version 2 --hardware-id ferry-sim --tag main --ref demo/v2 --ostree-repo "$work/build"; expect 0

step "Create a simulated device running demo-lmp-1"
show sim create "$work/device" --repo "$work/factory" --target demo-lmp-1; expect 0
config="$work/device/etc/sota/conf.d"
show status --config "$config"; expect 0

step "Export demo-lmp-2 into $bundle"
show export --repo "$work/factory" demo-lmp-2 "$bundle" --tag main --expires-in-days 30; expect 0
ls "$bundle" "$bundle/tuf"

step "Install on the device: 100 means installed, reboot required"
show install --config "$config" --src-dir "$bundle"; expect 100

printf '$ fw_printenv -c %s\n' "$work/device/etc/fw_env.config"
fw_printenv -c "$work/device/etc/fw_env.config"

step "Run before the reboot: 100 again, nothing changed"
show run --config "$config"; expect 100

step "Reboot (the simulated U-Boot picks the new deployment)"
show sim reboot "$work/device"; expect 0

step "Run after the reboot: 0 means the update succeeded"
show run --config "$config"; expect 0

step "Status reports demo-lmp-2 booted"
show status --config "$config"; expect 0
ferry status --config "$config" --json | grep -q '"target": "demo-lmp-2"'

step "Install the same bundle again: 0, already installed"
show install --config "$config" --src-dir "$bundle"; expect 0

step "A rootfs that does not boot: U-Boot falls back, run answers 99 and the device stays on demo-lmp-2"
show sim rootfs --ostree-repo "$work/build" --branch demo/v3 --version 3 --boot-fails; expect 0
show target add --repo "$work/factory" --name demo-lmp --version 3 --hardware-id ferry-sim --tag main --ref demo/v3 --ostree-repo "$work/build"; expect 0
show export --repo "$work/factory" demo-lmp-3 "$work/bundle-v3" --tag main; expect 0
show install --config "$config" --src-dir "$work/bundle-v3"; expect 100
show sim reboot "$work/device"; expect 0
show run --config "$config"; expect 99
show status --config "$config"; expect 0

printf '\ndemo: done. The bundle is in %s; the factory and the device are in %s/\n' "$bundle" "$work"
