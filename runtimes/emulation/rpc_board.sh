#!/usr/bin/env bash
# Starts an emulated aarch64 board that joins a TVM RPC tracker, as a Raspberry Pi or a
# Jetson running `python -m tvm.exec.rpc_server` would:
#
#   PYTHON=.venv/bin/python runtimes/emulation/rpc_board.sh TRACKER_HOST:PORT KEY [PORT]
#
# The server runs under qemu-user in the arm64 root filesystem of build_rootfs.sh (the device
# bundle's Python, numpy and TVM at this host's versions, plus cloudpickle for the server's
# session workers, which are fresh aarch64 Pythons: binfmt_misc must hand them to qemu, as
# host_tools.sh sets up). It serves on PORT..PORT+50 (default 9090) of loopback until killed.
# Emulated timings say nothing about a device's speed: use it to check mechanics only.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
[ $# -ge 2 ] || { echo "usage: rpc_board.sh TRACKER_HOST:PORT KEY [PORT]" >&2; exit 2; }
TRACKER="$1"; KEY="$2"; PORT="${3:-9090}"

ROOT="$(bash "$HERE/build_rootfs.sh")"
export QEMU_CPU="${QEMU_CPU:-neoverse-n1}"
exec chroot "$ROOT" /usr/bin/qemu-aarch64-static /usr/bin/python3.11 -m tvm.exec.rpc_server \
  --tracker "$TRACKER" --key "$KEY" --host 127.0.0.1 --port "$PORT" --port-end "$((PORT + 50))"
