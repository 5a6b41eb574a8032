#!/usr/bin/env bash
# Installs the host's Debian packages for cross-compiling and emulating aarch64 artifacts:
# qemu-user-static (runs aarch64 binaries), mmdebstrap + arch-test (builds the arm64 root
# filesystem), gcc-aarch64-linux-gnu + libc6-dev-arm64-cross (links TVM libraries for
# aarch64; without the libc dev files the link fails on crti.o). Idempotent; needs root
# only when something is missing.
set -euo pipefail

PACKAGES=(qemu-user-static mmdebstrap arch-test gcc-aarch64-linux-gnu libc6-dev-arm64-cross)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "host_tools.sh: missing Debian packages ${missing[*]}; run as root to install them" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# aarch64 programs that start other aarch64 programs (a phone's shell starting the bundle's
# loader, TVM's RPC server forking its worker) need the kernel to hand aarch64 ELF files to
# qemu: binfmt_misc, as Debian's binfmt-support sets up on a desktop. Registered with the F
# flag, the kernel opens qemu now, so a chroot needs no qemu binary inside (a stand-in phone
# holds only its own aarch64 files). Best effort: the single-process emulation works without.
BINFMT=/proc/sys/fs/binfmt_misc
# Debian's qemu keeps argv[0] (flag P) when started under this name: a busybox applet
# re-executing itself as `cat` must stay `cat`
QEMU=/usr/libexec/qemu-binfmt/aarch64-binfmt-P
FLAGS=FP
[ -e "$QEMU" ] || { QEMU="$(command -v qemu-aarch64-static || true)"; FLAGS=F; }
if [ "$(id -u)" -eq 0 ] && [ -n "$QEMU" ] && [ ! -e "$BINFMT/qemu-aarch64" ]; then
  [ -e "$BINFMT/register" ] || mount -t binfmt_misc binfmt_misc "$BINFMT" 2>/dev/null || true
  if [ -w "$BINFMT/register" ]; then
    printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:'"$QEMU:$FLAGS" \
      > "$BINFMT/register" 2>/dev/null || echo "host_tools.sh: could not register qemu-aarch64 with binfmt_misc" >&2
  fi
fi
exit 0
