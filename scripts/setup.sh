#!/usr/bin/env bash
# Prepares a fresh Debian machine (as root) for ferry: the Debian packages ferry drives, then npm ci and the build.
# Sourced by demo.sh and test.sh; safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Debian package -> a command (or an absolute path to a file) it provides, to tell whether it is installed already.
declare -A PACKAGES=(
  [ostree]=ostree
  [u-boot-tools]=mkenvimage
  [libubootenv-tool]=fw_setenv
  [grub-common]=grub-editenv
  [busybox-static]=/bin/busybox
  [docker.io]=dockerd
  [docker-compose]=docker-compose
  [skopeo]=skopeo
  [runc]=runc
  [time]=/usr/bin/time
  [faketime]=faketime
  [tmux]=tmux
  # Reads the device CA's certificates and requests in the tests, as any other reader would.
  [openssl]=openssl
  [dash]=dash
  [systemd]=systemd-analyze
  [exfat-fuse]=/usr/sbin/mount.exfat-fuse
  [exfatprogs]=/usr/sbin/mkfs.exfat
  # Signing keys in a PKCS#11 token: SoftHSM2 is the token the tests use; npm ci builds the PKCS#11 binding
  # (pkcs11js, a native addon) with node-gyp, which needs a compiler, make and python3.
  [softhsm2]=softhsm2-util
  [g++]=g++
  [make]=make
  [python3]=python3
  # The real-boot lane (test/realboot): the VM, its two bootloaders, and the tools that build its disks and sticks
  # without a loop device. The kernel and ostree-boot are fetched there with apt-get download, not installed.
  [qemu-system-x86]=qemu-system-x86_64
  [u-boot-qemu]=/usr/lib/u-boot/qemu-x86/u-boot.rom
  [grub-pc-bin]=/usr/lib/grub/i386-pc/boot.img
  [mtools]=mcopy
  [dosfstools]=mkfs.vfat
  [fdisk]=sfdisk
  [cpio]=cpio
  [kmod]=depmod
  [e2fsprogs]=mkfs.ext4
)

missing=()
for package in "${!PACKAGES[@]}"; do
  probe=${PACKAGES[$package]}
  if [[ $probe == /* ]]; then
    [[ -e $probe ]] || missing+=("$package")
  else
    command -v "$probe" >/dev/null 2>&1 || missing+=("$package")
  fi
done
# busybox-static must be the static build: the simulated rootfs has no libc to link against.
if [[ -x /bin/busybox ]] && ! dpkg -s busybox-static >/dev/null 2>&1; then missing+=(busybox-static); fi

if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "ferry setup: missing Debian packages: ${missing[*]}; run as root, or install them first" >&2
    exit 1
  fi
  echo "ferry setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
