#!/usr/bin/env bash
# A private dockerd for the simulated device: its own socket, data root and exec root (flags as in
# shared/reference.md §7), never the system-wide engine. Usage: private-dockerd.sh start|stop|restart DIR
set -euo pipefail
action=$1
dir=$(realpath -m "$2")
sock="$dir/d.sock"

start() {
  mkdir -p "$dir"
  dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs --shutdown-timeout=3 \
    --data-root "$dir/data" --exec-root "$dir/exec" -H "unix://$sock" --pidfile "$dir/d.pid" \
    >>"$dir/dockerd.log" 2>&1 &
  for _ in $(seq 1 300); do
    if docker -H "unix://$sock" version >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "private dockerd did not start; see $dir/dockerd.log" >&2
  tail -n 20 "$dir/dockerd.log" >&2 || true
  return 1
}

stop() {
  [[ -f $dir/d.pid ]] || return 0
  pid=$(cat "$dir/d.pid")
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  kill -9 "$pid" 2>/dev/null || true
}

case $action in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  *) echo "usage: $0 start|stop|restart DIR" >&2; exit 2 ;;
esac
