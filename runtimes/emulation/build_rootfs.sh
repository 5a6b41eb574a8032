#!/usr/bin/env bash
# Builds (once, then reuses) the arm64 root filesystem that runs runtimes/runner.py under
# qemu-user-static in a chroot, and prints its path on stdout:
#
#   PYTHON=.venv/bin/python runtimes/emulation/build_rootfs.sh
#
# It is the aarch64 device bundle (`edgeprune bundle`: a minimal Debian Python 3.11 and the
# aarch64 wheels of numpy, onnxruntime and apache-tvm at the host's versions) plus what only a
# chroot under qemu needs (the qemu binary, this folder's cpuinfo.aarch64 as /proc/cpuinfo).
# Both are built by edgeprune/devices/bundle_build.py and kept in the user cache
# (edgeprune/locations.py: bundles/ and emulation/); a build that stops half-way leaves no
# folder that looks finished. Needs root (chroot); installs the host tools first.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
PYTHON="${PYTHON:-python3}"

bash "$HERE/host_tools.sh" >&2
exec "$PYTHON" -m edgeprune.devices.bundle_build emulation
