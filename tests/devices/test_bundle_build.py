"""`edgeprune bundle`: the aarch64 device bundle a phone without Python runs the runner with,
built from package-registry artifacts into the user cache (content-keyed, atomic) and copied
to -o DIR; the emulation root filesystem is the same bundle plus qemu's chroot pieces."""

from __future__ import annotations

import json
import os
import shutil
import time
from importlib.metadata import version
from pathlib import Path

import pytest

from edgeprune import locations
from edgeprune.backends.emulation import emulation_available, ensure_host_tools
from edgeprune.cli import main
from edgeprune.devices import bundle_build
from edgeprune.devices.adb import AdbDevice
from edgeprune.devices.bundle import LOADER, open_bundle
from edgeprune.errors import DeviceError
from tests.devices.adb_phone import SERIAL, Phone
from tests.devices.micro import tasks_for

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("EDGEPRUNE_CACHE_DIR", str(folder))
    return folder


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_an_unknown_arch_is_bad_input(cache, tmp_path, capsys):
    assert main(["bundle", "--arch", "riscv64", "-o", str(tmp_path / "out")]) == 2
    assert "--arch riscv64" in one_error_line(capsys)
    assert not (tmp_path / "out").exists() and not cache.exists()


def test_an_unwritable_output_is_bad_input(cache, tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert main(["bundle", "-o", str(a_file / "bundle")]) == 2
    assert "is not a folder" in one_error_line(capsys)
    assert main(["bundle", "-o", "/proc/edgeprune-bundle"]) == 2
    assert "cannot be written" in one_error_line(capsys)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("keep")
    assert main(["bundle", "-o", str(taken)]) == 2
    assert "not a device bundle" in one_error_line(capsys)
    assert (taken / "mine.txt").read_text() == "keep" and not cache.exists()


def test_missing_mmdebstrap_is_a_tool_error(cache, tmp_path, monkeypatch, capsys):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert main(["bundle", "-o", str(tmp_path / "new" / "out")]) == 5
    assert "needs mmdebstrap" in one_error_line(capsys)
    assert not (tmp_path / "new").exists() and not (cache / "bundles").exists()


def test_a_cut_build_never_looks_complete(cache, monkeypatch):
    monkeypatch.setattr(bundle_build, "mmdebstrap_mode", lambda: "root")

    def cut(root, arch, pins, key):
        (root / "usr/bin").mkdir(parents=True)
        (root / "usr/bin/python3.11").write_text("half")
        raise KeyboardInterrupt

    monkeypatch.setattr(bundle_build, "build", cut)
    with pytest.raises(KeyboardInterrupt):
        bundle_build.ensure_bundle("aarch64")
    assert [p.name for p in (cache / "bundles").iterdir()] == [".lock"]


def test_the_key_follows_versions_and_suite(monkeypatch):
    arch = bundle_build.arch_named("arm64")
    pins = bundle_build.host_pins()
    key = bundle_build.bundle_key(arch, pins)
    assert key == bundle_build.bundle_key(arch, list(reversed(pins)))
    assert key != bundle_build.bundle_key(arch, [p.replace("numpy==", "numpy==0.") for p in pins])
    monkeypatch.setattr(bundle_build, "SUITE", "trixie")
    assert key != bundle_build.bundle_key(arch, pins)


def test_the_bundle_is_made_portable(tmp_path):
    root = tmp_path / "root"
    (root / "etc/python3.11").mkdir(parents=True)
    (root / "etc/python3.11/sitecustomize.py").write_text("")
    lib = root / "usr/lib/python3.11"
    lib.mkdir(parents=True)
    (lib / "sitecustomize.py").symlink_to("/etc/python3.11/sitecustomize.py")
    (lib / "gone.py").symlink_to("/etc/not-in-the-bundle.py")
    (root / "dev").mkdir()
    (root / "dev/fd").symlink_to("/proc/self/fd")
    (root / "usr/share/doc/x").mkdir(parents=True)
    bundle_build.make_portable(root)
    assert os.readlink(lib / "sitecustomize.py") == "../../../etc/python3.11/sitecustomize.py"
    assert (lib / "sitecustomize.py").exists() and not (lib / "gone.py").is_symlink()
    assert not (root / "dev").exists() and not (root / "usr/share/doc").exists()


def test_a_copy_is_put_in_place_whole(tmp_path):
    src = tmp_path / "cached"
    (src / "usr/bin").mkdir(parents=True)
    (src / "usr/bin/python3.11").write_text("new")
    (src / bundle_build.MANIFEST).write_text('{"key": "new"}')
    out = tmp_path / "out"
    (out / "usr/bin").mkdir(parents=True)
    (out / "usr/bin/python3.11").write_text("old")
    (out / "stale").write_text("from the old bundle")
    (out / bundle_build.MANIFEST).write_text('{"key": "old"}')
    assert bundle_build.copy_bundle(src, bundle_build.check_output(out)) == out
    assert (out / "usr/bin/python3.11").read_text() == "new" and not (out / "stale").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cached", "out"]


def test_a_phone_without_python_is_pointed_at_edgeprune_bundle(tmp_path, monkeypatch):
    Phone(tmp_path / "phone", monkeypatch)
    monkeypatch.setenv("EDGEPRUNE_DEVICE_PYTHON", "/data/local/tmp/no-such-python/python3")
    with pytest.raises(DeviceError) as err:
        AdbDevice(SERIAL).measure(tasks_for(tmp_path, (8,)))
    said = str(err.value)
    assert "no Python on the device" in said and "`edgeprune bundle -o DIR`" in said
    assert "EDGEPRUNE_DEVICE_BUNDLE" in said and "\n" not in said


def _seed_wheels(real: Path, cache: Path) -> None:
    """The aarch64 wheels already downloaded into the user's cache (the emulation tests fetch
    them too) are linked into the test's private cache, so a test run downloads them once."""
    dest = cache / "wheels"
    dest.mkdir(parents=True, exist_ok=True)
    for folder in (real / "wheels", real / "emulation" / "wheels"):
        for whl in folder.glob("*.whl") if folder.is_dir() else ():
            if not (dest / whl.name).exists():
                try:
                    os.link(whl, dest / whl.name)
                except OSError:
                    shutil.copy2(whl, dest / whl.name)


@pytest.mark.slow
@pytest.mark.skipif(emulation_available() is not None, reason=str(emulation_available()))
# a second build from nothing beside the user cache's (which the phone and emulation tests
# build first on a fresh machine, with the same bundle_build.build): CI leaves it to
# `make test-extended`
@pytest.mark.extended
def test_a_bundle_is_built_copied_and_runs_numpy_under_qemu(tmp_path, monkeypatch, capsys):
    """Built from nothing in a private cache (Debian packages from the archive, the wheels
    reused from the user's cache when there), then its Python started through its own loader
    under qemu-user with no chroot and no -L, exactly as a phone starts it. onnxruntime is not
    imported here: without a chroot qemu 7.2 shows it the host's x86 /proc/cpuinfo and it
    crashes (FACTS.md); the emulation root filesystem, which is this bundle plus an aarch64
    cpuinfo, imports it and tvm (bundle_build.ensure_emulation_root) and runs ORT and TVM
    artifacts (tests/backends/test_emulation.py)."""
    ensure_host_tools()
    real = locations.cache_dir()
    cache = tmp_path / "cache"
    monkeypatch.setenv("EDGEPRUNE_CACHE_DIR", str(cache))
    _seed_wheels(real, cache)
    out = tmp_path / "bundle"

    started = time.monotonic()
    assert main(["bundle", "--arch", "aarch64", "-o", str(out)]) == 0
    built_s = time.monotonic() - started
    printed = capsys.readouterr()
    assert printed.out.strip() == str(out.absolute())
    print(f"bundle built and copied in {built_s:.1f} s")

    bundle = open_bundle(out)
    assert bundle.python == "usr/bin/python3.11" and (out / LOADER).exists()
    site = out / "usr/local/lib/python3.11/dist-packages"
    assert {"numpy", "onnxruntime", "tvm", "tvm_ffi", "ml_dtypes"} <= {p.name for p in site.iterdir()}
    info = json.loads((out / bundle_build.MANIFEST).read_text())
    assert info["wheels"] == sorted(bundle_build.host_pins()) and info["arch"] == "aarch64"
    # nothing of a host or of the emulation in what goes to a phone
    assert not (out / "usr/bin/qemu-aarch64-static").exists() and not (out / "proc").exists()
    assert not (out / "dev").exists()
    assert not [p for p in out.rglob("*") if p.is_symlink() and os.readlink(p).startswith("/")]
    cached = [p for p in (cache / "bundles").iterdir() if not p.name.startswith(".")]
    assert [p.name for p in cached] == [f"aarch64-{info['key']}"]

    # numpy computes on aarch64, from the bundle alone (importing tvm here would add 15-30 s
    # of emulation; the emulation tests run TVM and ORT artifacts in this same bundle)
    probe = ("import json, platform, sys, numpy; "
             "a = numpy.arange(12, dtype=numpy.float32).reshape(3, 4); "
             "print(json.dumps([platform.machine(), sys.prefix, numpy.__file__, float((a @ a.T).sum()), "
             "numpy.__version__]))")
    proc = bundle_build.run_under_qemu(out, ["-c", probe], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-800:]
    machine, prefix, numpy_file, total, numpy_version = json.loads(proc.stdout.strip().splitlines()[-1])
    assert machine == "aarch64" and total == 1134.0   # what the host computes
    assert prefix.startswith(str(out.absolute())) and numpy_file.startswith(str(site))
    assert numpy_version == version("numpy")
    # and the runner starts there (it answers a bad call with its usage line)
    proc = bundle_build.run_under_qemu(out, [str(REPO / "runtimes/runner.py")], cwd=tmp_path)
    assert proc.returncode == 2 and "usage: runner.py JOB.json" in proc.stdout

    # the second time it is the cached one, and an up-to-date -o is left as it is
    started = time.monotonic()
    assert main(["bundle", "-o", str(out)]) == 0
    assert time.monotonic() - started < 10
    assert "building" not in capsys.readouterr().err
