#!/usr/bin/env bash
# Builds (once, then reuses) an arm64 Debian root filesystem that runs runtimes/runner.py
# under qemu-user-static: Python 3.11 and the aarch64 wheels of numpy, onnxruntime and
# apache-tvm at the host's versions (a TVM library or .ort file built on the host must load
# in the guest). Prints the root filesystem's path on stdout.
#
#   PYTHON=.venv/bin/python runtimes/emulation/build_rootfs.sh
#
# The cache lives in the user cache (edgeprune/locations.py: $EDGEPRUNE_CACHE_DIR, else the
# older $EDGEPRUNE_CACHE, else $XDG_CACHE_HOME/edgeprune or ~/.cache/edgeprune)/emulation, keyed by this
# script, the cpuinfo file and the wheel versions; a build that stops half-way leaves no
# directory that looks finished. Needs root (mmdebstrap --mode=root, chroot).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
PYTHON="${PYTHON:-python3}"
CACHE="${EDGEPRUNE_CACHE_DIR:-${EDGEPRUNE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgeprune}}/emulation"
SUITE=bookworm   # its python3.11 matches the cp311 wheels

bash "$HERE/host_tools.sh" >&2

version() { "$PYTHON" -c "import importlib.metadata as m; print(m.version('$1'))"; }
WHEELS=(
  "numpy==$(version numpy)"
  "onnxruntime==$(version onnxruntime)"
  "apache-tvm==$(version apache-tvm)"
  "apache-tvm-ffi==$(version apache-tvm-ffi)"
  "ml_dtypes==$(version ml_dtypes)"
  "typing_extensions==$(version typing_extensions)"
)
KEY="$( { cat "$0" "$HERE/cpuinfo.aarch64"; printf '%s\n' "${WHEELS[@]}"; } | sha256sum | cut -c1-16)"
ROOT="$CACHE/rootfs-$KEY"
if [ -f "$ROOT/.edgeprune-complete" ]; then
  echo "$ROOT"
  exit 0
fi

mkdir -p "$CACHE/wheels"
exec 9>"$CACHE/.lock"
flock 9   # two test sessions building at once would share the temp name
if [ -f "$ROOT/.edgeprune-complete" ]; then echo "$ROOT"; exit 0; fi

TMP="$CACHE/.building-$KEY"
rm -rf "$TMP"
echo "build_rootfs: debootstrapping arm64 $SUITE into $TMP" >&2
# --variant=extract unpacks without running maintainer scripts, so no binfmt_misc is needed.
mmdebstrap --quiet --mode=root --arch=arm64 --variant=extract \
  --include=python3.11-minimal,libpython3.11-stdlib,libstdc++6,libgomp1,libgcc-s1,zlib1g \
  "$SUITE" "$TMP" >&2

PLATFORM=(--only-binary=:all: --python-version 3.11 --implementation cp
          --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64
          --platform manylinux_2_17_aarch64)
echo "build_rootfs: fetching aarch64 wheels ${WHEELS[*]}" >&2
"$PYTHON" -m pip download --quiet --no-deps "${PLATFORM[@]}" -d "$CACHE/wheels" "${WHEELS[@]}" >&2
"$PYTHON" -m pip install --quiet --no-deps --no-index --find-links "$CACHE/wheels" "${PLATFORM[@]}" \
  --target "$TMP/usr/local/lib/python3.11/dist-packages" "${WHEELS[@]}" >&2

# qemu 7.2 shows the guest the host's x86 /proc/cpuinfo, on which onnxruntime's CPU
# detection crashes; /proc is not mounted in the chroot, so this file is what it reads.
mkdir -p "$TMP/proc" "$TMP/sys/devices/system/cpu"
cp "$HERE/cpuinfo.aarch64" "$TMP/proc/cpuinfo"
# ...and its cpuinfo library reads the CPU lists from /sys (also not mounted).
ncpu="$(grep -c ^processor "$HERE/cpuinfo.aarch64")"
for f in possible present online; do echo "0-$((ncpu - 1))" > "$TMP/sys/devices/system/cpu/$f"; done
cp "$(command -v qemu-aarch64-static)" "$TMP/usr/bin/qemu-aarch64-static"
ln -sf python3.11 "$TMP/usr/bin/python3"
mkdir -p "$TMP/work"

# Smoke test before calling it finished: every runtime imports in the guest.
QEMU_CPU=neoverse-n1 chroot "$TMP" /usr/bin/qemu-aarch64-static /usr/bin/python3.11 -c \
  "import numpy, onnxruntime, tvm, platform; assert platform.machine() == 'aarch64'" >&2

touch "$TMP/.edgeprune-complete"
rm -rf "$ROOT"
mv "$TMP" "$ROOT"
echo "$ROOT"
