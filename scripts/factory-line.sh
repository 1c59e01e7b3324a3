#!/usr/bin/env bash
# factory-line.sh: flash one device from a bundle, the way a factory line does it, acting on every exit code.
#
#   scripts/factory-line.sh [--sim DEVICE_DIR] BUNDLE CONFIG
#
# BUNDLE is a bundle directory or a .tar/.zip of one; CONFIG is the device's ferry configuration (file or directory).
# With --sim, the reboot is `ferry sim reboot DEVICE_DIR`; without, it is $FERRY_REBOOT (default: none, and the script
# stops after install saying "reboot, then run this again": on hardware the line runs it again after the boot).
#
# Environment:
#   FERRY                  how to call ferry (default: `ferry` if on PATH, else node dist/src/cli/ferry.js here)
#   FERRY_ENGINE_RESTART   how to restart the container engine (default: systemctl restart docker)
#   FERRY_TESTING_WAIT     seconds to wait before calling run again after 105 (default: 5)
#
# Every line it prints is "<time> <device config> <step> <what happened>", ending with one RESULT line:
#   RESULT PASS <target>           exit 0
#   RESULT FAIL <code> <reason>    exit with ferry's code (1 if the script itself failed)
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
sim=''
if [[ ${1:-} == --sim ]]; then
  sim=${2:?--sim needs the device directory}
  shift 2
fi
if [[ $# -ne 2 ]]; then
  echo "usage: $0 [--sim DEVICE_DIR] BUNDLE CONFIG" >&2
  exit 2
fi
bundle=$1
config=$2

if [[ -n ${FERRY:-} ]]; then
  read -r -a ferry_cmd <<<"$FERRY"
elif command -v ferry >/dev/null 2>&1; then
  ferry_cmd=(ferry)
else
  ferry_cmd=(node "$here/dist/src/cli/ferry.js")
fi
engine_restart=${FERRY_ENGINE_RESTART:-systemctl restart docker}
testing_wait=${FERRY_TESTING_WAIT:-5}

log() { printf '%s %s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$config" "$*"; }
pass() {
  log "RESULT PASS $1"
  exit 0
}
fail() {
  log "RESULT FAIL $1 $2"
  exit "$1"
}

# Runs ferry, logging its one-line reason on failure; sets $code and $said (its stderr).
call() {
  local step=$1
  shift
  said=$("${ferry_cmd[@]}" "$@" --config "$config" 2>&1 >/dev/null)
  code=$?
  log "$step exit $code${said:+: ${said//$'\n'/ | }}"
}

current_target() {
  "${ferry_cmd[@]}" status --config "$config" --json 2>/dev/null |
    node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s).current?.name ?? "unknown"))'
}

reboot_device() {
  if [[ -n $sim ]]; then
    log "reboot (simulated)"
    "${ferry_cmd[@]}" sim reboot "$sim" >/dev/null || fail 1 "the simulated device did not boot"
  elif [[ -n ${FERRY_REBOOT:-} ]]; then
    log "reboot: $FERRY_REBOOT"
    eval "$FERRY_REBOOT"
    exit 0
  else
    log "reboot the device, then run this script again"
    exit 100
  fi
}

restart_engine() {
  log "restart the container engine: $engine_restart"
  eval "$engine_restart" || fail 5 "the container engine did not restart"
}

# After the reboot (or the engine restart): run until the update is committed or has failed for good.
finish() {
  local rounds=0
  while ((rounds++ < 10)); do
    call run run
    case $code in
      0 | 90) pass "$(current_target)" ;;
      100) reboot_device ;;
      105) sleep "$testing_wait" ;;
      31) sleep 2 ;;
      5) restart_engine ;;
      32) return 32 ;;
      99) fail 99 "the update failed and was rolled back" ;;
      110 | 120) fail "$code" "INCONSISTENT: install a known-good bundle" ;;
      *) fail "$code" "run failed" ;;
    esac
  done
  fail 1 "run did not settle after 10 rounds"
}

# An install cut off before it finished (32) is tried once more.
for attempt in 1 2; do
  call install install --src-dir "$bundle"
  case $code in
    0) log "already up to date" ;;
    100 | 30) reboot_device ;;
    101) restart_engine ;;
    90) reboot_device; continue ;;
    31) sleep 2; continue ;;
    60) fail 60 "not enough free space on the device" ;;
    6 | 7 | 15 | 20) fail "$code" "this bundle is not for this device" ;;
    8 | 11 | 12 | 13 | 14 | 16 | 17 | 70 | 71 | 72 | 73 | 74 | 76) fail "$code" "the bundle is bad, damaged or expired" ;;
    77 | 102) fail "$code" "refused: the target failed before, or is a downgrade" ;;
    *) fail "$code" "install failed" ;;
  esac
  finish
  [[ $? -eq 32 ]] || exit 1
  log "the install was cut off and undone: installing again (attempt $((attempt + 1)))"
done
fail 32 "the install was cut off twice"
