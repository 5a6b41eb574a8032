"""The aarch64 device bundle: pushed once to a phone without Python, Python started through
the bundle's own glibc loader."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeprune.backends.emulation import EMULATION_DIR, emulation_available, ensure_host_tools
from edgeprune.devices.adb import AdbDevice
from edgeprune.devices.bundle import LOADER, open_bundle
from edgeprune.errors import UsageError
from tests.devices.adb_phone import SERIAL, Phone
from tests.devices.micro import tasks_for

REPO = Path(__file__).resolve().parents[2]


def fake_bundle(folder: Path) -> Path:
    """A bundle whose 'loader' checks it is called as a glibc loader is, then runs this
    machine's Python in place of the bundle's aarch64 one (the stand-in phone is this x86 host)."""
    root = folder / "bundle"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/python3.11").write_text("aarch64 python stands here\n")
    (root / "usr/local/lib/python3.11/dist-packages").mkdir(parents=True)
    loader = root / LOADER
    loader.parent.mkdir(parents=True)
    loader.write_text(f'''#!/bin/sh
[ "$1" = --library-path ] || {{ echo "loader: expected --library-path" >&2; exit 97; }}
case "$3" in */bundle/usr/bin/python3.11) ;; *) echo "loader: not the bundle's python: $3" >&2; exit 98;; esac
[ -d "$PYTHONHOME" ] || {{ echo "loader: PYTHONHOME $PYTHONHOME missing" >&2; exit 99; }}
shift 3
unset PYTHONHOME PYTHONPATH
exec {sys.executable} "$@"
''')
    loader.chmod(0o755)
    return root


def test_a_phone_without_python_gets_the_bundle_pushed_once(tmp_path, monkeypatch):
    phone = Phone(tmp_path / "phone", monkeypatch)
    monkeypatch.delenv("EDGEPRUNE_DEVICE_PYTHON")
    monkeypatch.setenv("EDGEPRUNE_DEVICE_BUNDLE", str(fake_bundle(tmp_path)))
    (r,) = AdbDevice(SERIAL).measure(tasks_for(tmp_path, (8,)))
    assert r.ok and r.median_ms > 0
    on_phone = phone.root / "data/local/tmp/edgeprune/bundle"
    assert (on_phone / LOADER).exists() and (on_phone / ".edgeprune-bundle").exists()
    runner = [c[3] for c in phone.adb_calls() if c[2] == "shell" and "runner.py" in c[3]]
    assert "../../bundle/" + LOADER in runner[0] and "PYTHONHOME=../../bundle/usr" in runner[0]

    before = len(phone.adb_calls())
    (r,) = AdbDevice(SERIAL).measure(tasks_for(tmp_path, (16,)))
    assert r.ok
    pushed = [Path(c[4]).name for c in phone.adb_calls()[before:] if c[2] == "push"]
    assert "bundle" not in pushed and pushed[-1] == "job.json"


def test_a_folder_that_is_not_a_bundle_is_refused(tmp_path):
    with pytest.raises(UsageError, match="not a device bundle"):
        open_bundle(tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(emulation_available() is not None, reason=str(emulation_available()))
def test_the_launcher_starts_the_real_arm64_bundles_python_from_the_bundle_alone(tmp_path):
    """The very command a phone runs, under qemu: the arm64 root filesystem built for
    emulation is the bundle, and nothing is looked up outside it (no chroot, no -L).
    (Timing ORT here would need the chroot's aarch64 /proc/cpuinfo: see FACTS.md.)"""
    ensure_host_tools()
    built = subprocess.run([str(EMULATION_DIR / "build_rootfs.sh")], capture_output=True, text=True,
                           env={**os.environ, "PYTHON": sys.executable}, timeout=1800)
    assert built.returncode == 0, built.stderr[-500:]
    bundle = open_bundle(built.stdout.strip().splitlines()[-1])
    argv, env = bundle.launcher(str(bundle.local))
    probe = ("import json, platform, sys, numpy; "
             "print(json.dumps([platform.machine(), sys.prefix, numpy.__file__]))")

    def run(*args):
        return subprocess.run(["qemu-aarch64-static", *argv, *args], cwd=tmp_path, capture_output=True, text=True,
                              env={"QEMU_CPU": "neoverse-n1", "PATH": "/usr/bin:/bin", **env}, timeout=600)

    proc = run("-c", probe)
    assert proc.returncode == 0, proc.stderr[-800:]
    machine, prefix, numpy_file = json.loads(proc.stdout)
    assert machine == "aarch64"
    assert prefix.startswith(str(bundle.local)) and numpy_file.startswith(str(bundle.local))
    # and the runner itself starts there (it answers a bad call with its usage line)
    proc = run(str(REPO / "runtimes/runner.py"))
    assert proc.returncode == 2 and "usage: runner.py JOB.json" in proc.stdout
