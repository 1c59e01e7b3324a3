#!/usr/bin/env bash
# factory-line.sh: flash one device from a bundle, the way a factory line does it, acting on every exit code.
#
#   scripts/factory-line.sh [--sim DEVICE_DIR] BUNDLE CONFIG
#
# BUNDLE is a bundle directory or a .tar/.zip of one; CONFIG is the device's ferry configuration (file or directory).
# The reboot: with --sim, `ferry sim reboot DEVICE_DIR`; without, the command in $FERRY_REBOOT. That command either
# returns once the device has booted again (the simulator's reboot, a reboot over ssh that waits for the device) and
# the script goes on with `run`, or it takes the script down with the device. Without $FERRY_REBOOT, or when `run`
# says the device has not rebooted yet, the script stops with RESULT REBOOT (exit 100). Stopped or taken down, it is
# run again after the boot: `install` then answers 30 (an install is pending) and the script goes on with `run`, so
# the device is rebooted only when ferry asks for it.
#
# Environment:
#   FERRY                  how to call ferry (default: `ferry` if on PATH, else node dist/src/cli/ferry.js here)
#   FERRY_REBOOT           how to reboot the device (default: none: stop and ask for the reboot)
#   FERRY_ENGINE_RESTART   how to restart the container engine (default: systemctl restart docker)
#   FERRY_TESTING_WAIT     seconds to wait before calling run again after 105 (default: 5)
#
# Every line it prints is "<time> <device config> <step> <what happened>", ending with one RESULT line:
#   RESULT PASS <target>           exit 0
#   RESULT REBOOT <what to do>     exit 100: reboot the device, then run this script again
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

# Runs ferry, logging its one-line reason; sets $code, $said (its stderr) and $outcome (the outcome's name, from
# --json: two outcomes share 100 on `run`, and only the name tells "not rebooted yet" from "reboot to roll back").
call() {
  local step=$1 out
  shift
  out=$(mktemp) || fail 1 "cannot create a temporary file"
  said=$("${ferry_cmd[@]}" "$@" --config "$config" --json 2>&1 >"$out")
  code=$?
  outcome=$(sed -n 's/^  "outcome": "\([A-Z_]*\)",$/\1/p' "$out")
  rm -f "$out"
  log "$step exit $code${said:+: ${said//$'\n'/ | }}"
}

current_target() {
  "${ferry_cmd[@]}" status --config "$config" --json 2>/dev/null |
    node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s).current?.name ?? "unknown"))'
}

# Stops the script until the device has booted: the line runs it again after the boot, and it goes on with `run`.
wait_for_boot() {
  log "RESULT REBOOT $1"
  exit 100
}

# Reboots the device and returns once it has booted again. A reboot command that returns before the device goes
# down (a reboot on the device itself) is caught by the next `run`, which says the device has not rebooted yet.
reboot_device() {
  if [[ -n $sim ]]; then
    log "reboot (simulated)"
    "${ferry_cmd[@]}" sim reboot "$sim" >/dev/null || fail 1 "the simulated device did not boot"
  elif [[ -n ${FERRY_REBOOT:-} ]]; then
    log "reboot: $FERRY_REBOOT"
    said=$(eval "$FERRY_REBOOT" 2>&1 >/dev/null) || log "the reboot command exited $?${said:+: ${said//$'\n'/ | }}"
  else
    wait_for_boot "reboot the device, then run this script again"
  fi
  rebooted=1
}

restart_engine() {
  log "restart the container engine: $engine_restart"
  eval "$engine_restart" || fail 5 "the container engine did not restart"
}

# After the reboot (or the engine restart, or when an earlier install is pending): run until the update is
# committed (returns 0) or was undone (returns 32: install again); every other end is final.
finish() {
  local rounds=0
  while ((rounds++ < 10)); do
    call run run
    case $code in
      0 | 90) return 0 ;;
      100)
        if [[ $outcome == REBOOT_NOT_DONE_YET && -n $rebooted ]]; then
          wait_for_boot "the device has not rebooted yet: run this script again after the boot"
        fi
        reboot_device
        continue
        ;;
      105) sleep "$testing_wait" ;;
      31) sleep 2 ;;
      5) restart_engine ;;
      32) return 32 ;;
      99) fail 99 "the update failed and was rolled back" ;;
      110 | 120) fail "$code" "INCONSISTENT: install a known-good bundle" ;;
      *) fail "$code" "run failed" ;;
    esac
    rebooted=''
  done
  fail 1 "run did not settle after 10 rounds"
}

# install, then what its code asks for. It installs again after an earlier pending install was finished (30: the
# device booted into it, or waits for its reboot: `run` knows which), and once after an install cut off (32).
cut_off=0
for _ in 1 2 3 4; do
  rebooted=''
  call install install --src-dir "$bundle"
  case $code in
    0) pass "$(current_target)" ;;
    100) reboot_device ;;
    101) restart_engine ;;
    30) log "an install is pending: run it first" ;;
    90) reboot_device; continue ;;
    31) sleep 2; continue ;;
    60) fail 60 "not enough free space on the device" ;;
    6 | 7 | 15 | 20) fail "$code" "this bundle is not for this device" ;;
    8 | 11 | 12 | 13 | 14 | 16 | 17 | 70 | 71 | 72 | 73 | 74 | 76) fail "$code" "the bundle is bad, damaged or expired" ;;
    77 | 102) fail "$code" "refused: the target failed before, or is a downgrade" ;;
    *) fail "$code" "install failed" ;;
  esac
  install_code=$code
  finish
  if [[ $? -eq 0 ]]; then
    [[ $install_code == 30 ]] || pass "$(current_target)"
    log "the pending update is done: installing this bundle"
  elif ((cut_off++ == 0)); then
    log "the install was cut off and undone: installing again"
  else
    fail 32 "the install was cut off twice"
  fi
done
fail 1 "install did not settle after 4 attempts"
