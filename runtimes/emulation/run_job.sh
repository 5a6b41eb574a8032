#!/usr/bin/env bash
# Runs runtimes/runner.py on a job under aarch64 emulation (qemu-user-static in the cached
# arm64 root filesystem of build_rootfs.sh):
#
#   PYTHON=.venv/bin/python runtimes/emulation/run_job.sh JOB.json
#
# The job's folder is copied into the root filesystem, run there, and copied back (results
# and saved outputs included), so model and input paths in the job must be relative to it.
# Emulated timings say nothing about a device's speed: use this to check outputs only.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
[ $# -eq 1 ] || { echo "usage: run_job.sh JOB.json" >&2; exit 2; }
JOB="$(realpath "$1")"
JOBDIR="$(dirname "$JOB")"

ROOT="$(bash "$HERE/build_rootfs.sh")"
WORK="$(mktemp -d "$ROOT/work/job-XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/job"
cp -a "$JOBDIR/." "$WORK/job/"
cp "$HERE/../runner.py" "$HERE"/../backend_*.py "$WORK/"

GUEST="/work/$(basename "$WORK")"
status=0
QEMU_CPU="${QEMU_CPU:-neoverse-n1}" chroot "$ROOT" /usr/bin/qemu-aarch64-static \
  /usr/bin/python3.11 "$GUEST/runner.py" "$GUEST/job/$(basename "$JOB")" || status=$?
cp -a "$WORK/job/." "$JOBDIR/"
exit $status
