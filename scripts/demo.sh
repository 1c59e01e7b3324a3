#!/usr/bin/env bash
# The ferry demo: a factory repository with rootfs versions and a compose app, a simulated device with its own
# dockerd, bundles exported into bundles/, and install -> reboot -> run on the device, with every exit code shown.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh

ferry() { node dist/src/cli/ferry.js "$@"; }
work=.demo
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

# A previous run may have left its engine running; ostree marks deployment directories immutable.
[[ -d $work/docker ]] && bash scripts/private-dockerd.sh stop "$work/docker"
[[ -d $work ]] && chattr -R -i "$work" 2>/dev/null || true
rm -rf "$work" bundles/demo-v2 bundles/demo-v3
mkdir -p "$work" bundles

engine="unix://$(realpath -m "$work/docker/d.sock")"
docker_ps() {
  printf '$ docker ps\n'
  docker -H "$engine" ps --format '{{.Names}}  {{.Image}}  {{.Status}}'
}
heartbeat() {
  printf '$ docker exec heartbeat_beat_1 cat /data/heartbeat\n'
  sleep 1.5
  docker -H "$engine" exec heartbeat_beat_1 cat /data/heartbeat
}
trap 'bash scripts/private-dockerd.sh stop "$work/docker"' EXIT

step "The device's container engine: a private dockerd on its own socket"
bash scripts/private-dockerd.sh start "$work/docker"
echo "dockerd up at $engine"

step "Build two rootfs versions (busybox-static, a kernel stub and os-release) as OSTree commits"
show sim rootfs --ostree-repo "$work/build" --branch demo/v1 --version 1; expect 0
show sim rootfs --ostree-repo "$work/build" --branch demo/v2 --version 2; expect 0

step "Build three versions of a busybox image (no registry, no engine needed)"
for v in 1 2 3; do
  show sim image --out "$work/images/heartbeat-$v" --ref "ferry.local/demo/heartbeat:$v" --version-text "$v"; expect 0
done

step "The app: one busybox service that writes a heartbeat to a volume"
mkdir -p "$work/compose"
write_compose() {
  cat >"$work/compose/docker-compose.yml" <<YAML
version: "3"
services:
  beat:
    image: ferry.local/demo/heartbeat:$1
    network_mode: none
    restart: unless-stopped
    command: ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do cat /etc/image-version > /data/heartbeat; date >> /data/heartbeat; sleep 1; done"]
    volumes:
      - data:/data
volumes:
  data:
YAML
}
write_compose 1
cat "$work/compose/docker-compose.yml"

step "Create the factory repository; record three targets, each pinning one version of the app"
show repo init "$work/factory" --factory demo; expect 0
show app add heartbeat --repo "$work/factory" --compose "$work/compose" --image "$work/images/heartbeat-1"; expect 0
show target add --repo "$work/factory" --name demo-lmp --version 1 --hardware-id ferry-sim --tag main --ref demo/v1 --ostree-repo "$work/build" --app heartbeat; expect 0
write_compose 2
show app add heartbeat --repo "$work/factory" --compose "$work/compose" --image "$work/images/heartbeat-2"; expect 0
show target add --repo "$work/factory" --name demo-lmp --version 2 --hardware-id ferry-sim --tag main --ref demo/v2 --ostree-repo "$work/build" --app heartbeat; expect 0
write_compose 3
show app add heartbeat --repo "$work/factory" --compose "$work/compose" --image "$work/images/heartbeat-3"; expect 0
show target add --repo "$work/factory" --name demo-lmp --version 3 --hardware-id ferry-sim --tag main --ref demo/v2 --ostree-repo "$work/build" --app heartbeat; expect 0

step "Create a simulated device running demo-lmp-1 (rootfs 1, heartbeat 1)"
show sim create "$work/device" --repo "$work/factory" --target demo-lmp-1 --docker-host "$engine" --testing-window-seconds 2; expect 0
config="$work/device/etc/sota/conf.d"
show status --config "$config"; expect 0
docker_ps
heartbeat

step "Update 1: rootfs and app (demo-lmp-2), exported into bundles/demo-v2"
show export --repo "$work/factory" demo-lmp-2 bundles/demo-v2 --tag main --expires-in-days 30; expect 0
ls bundles/demo-v2 bundles/demo-v2/tuf bundles/demo-v2/apps

step "Install: 100 means installed, reboot required"
show install --config "$config" --src-dir bundles/demo-v2; expect 100
printf '$ fw_printenv -c %s\n' "$work/device/etc/fw_env.config"
fw_printenv -c "$work/device/etc/fw_env.config"

step "Run before the reboot: 100 again, nothing changed"
show run --config "$config"; expect 100

step "Reboot (the simulated U-Boot picks the new deployment; the engine comes back up with the board)"
show sim reboot "$work/device"; expect 0
bash scripts/private-dockerd.sh restart "$work/docker"

step "Run after the reboot: the new app starts; 0 means the update succeeded"
show run --config "$config"; expect 0
docker_ps
heartbeat

step "Update 2: only the app changed (demo-lmp-3), exported into bundles/demo-v3"
show export --repo "$work/factory" demo-lmp-3 bundles/demo-v3 --tag main; expect 0
show install --config "$config" --src-dir bundles/demo-v3; expect 101

step "101: no reboot; restart the container engine, then run"
bash scripts/private-dockerd.sh restart "$work/docker"
show run --config "$config"; expect 0
docker_ps
heartbeat
show status --config "$config"; expect 0
ferry status --config "$config" --json | grep -q '"target": "demo-lmp-3"'

step "Install the same bundle again: 0, already installed"
show install --config "$config" --src-dir bundles/demo-v3; expect 0

step "A rootfs that does not boot: U-Boot falls back, run answers 99 and the device stays on demo-lmp-3"
show sim rootfs --ostree-repo "$work/build" --branch demo/v4 --version 4 --boot-fails; expect 0
show target add --repo "$work/factory" --name demo-lmp --version 4 --hardware-id ferry-sim --tag main --ref demo/v4 --ostree-repo "$work/build" --app heartbeat; expect 0
show export --repo "$work/factory" demo-lmp-4 "$work/bundle-v4" --tag main; expect 0
show install --config "$config" --src-dir "$work/bundle-v4"; expect 100
show sim reboot "$work/device"; expect 0
show run --config "$config"; expect 99
show status --config "$config"; expect 0
docker_ps

printf '\ndemo: done. The bundles are in bundles/demo-v2 and bundles/demo-v3; the factory and the device are in %s/\n' "$work"
