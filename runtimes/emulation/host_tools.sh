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
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "host_tools.sh: missing Debian packages ${missing[*]}; run as root to install them" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
