"""Installed like users install it (issue 15): the wheel, built from this checkout and
installed non-editable into a fresh virtualenv, compiles and verifies from a folder outside
the checkout, with no source checkout on sys.path and nothing written under site-packages.

The fresh venv gets its third-party dependencies (torch, onnxruntime, TVM, ...) from this
environment's site-packages through a folder of links added by a .pth file, so the test needs
no network and installs in seconds; `pip install --no-index` still resolves the wheel's
declared dependencies against them. edgeprune itself (its editable install) is left out.

The commands are the README's "Using edgeprune in CI" steps: --version, devices, compile of a
small model for `host` with a budget and gates, and verify of the artifact after it was moved
to another folder and the source model moved away (DATA given on the command line).
"""

from __future__ import annotations

import json
import re
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("edgeprune", "profiles", "runtimes", "pyproject.toml", "setup.py", "README.md")
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", ".*")


def _run(cmd, cwd, env, timeout=300, ok=(0,)):
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode in ok, f"{cmd} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for p in sorted(folder.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(folder))] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv python, its site-packages, a clean environment) with the wheel installed."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=SKIP)
        else:
            shutil.copy2(path, src / name)
    # the build runs in a copy: nothing is written into the checkout (build/, egg-info)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp / "wheels", src],
         cwd=tmp, env=dict(os.environ))
    wheels = list((tmp / "wheels").glob("edgeprune-*.whl"))
    assert len(wheels) == 1

    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp, env=dict(os.environ))
    python = venv / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=tmp, env=dict(os.environ)).stdout.strip())
    deps = tmp / "deps"
    deps.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if entry.name.startswith(("edgeprune", "__editable__", "_distutils_hack", "distutils-precedence")):
            continue
        (deps / entry.name).symlink_to(entry)
    (site / "_edgeprune_test_deps.pth").write_text(f"{deps}\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "EDGEPRUNE_CACHE", "EDGEPRUNE_CACHE_DIR", "EDGEPRUNE_CONFIG_DIR",
                        "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "VIRTUAL_ENV")}
    env["HOME"] = str(tmp / "home")
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    _run([python, "-m", "pip", "install", "-q", "--no-index", "--find-links", tmp / "wheels", "edgeprune"],
         cwd=tmp, env=env)
    return python, site, env, tmp


@pytest.mark.slow
@pytest.mark.timeout(1800)   # ~75 s on an idle 2-core host; a loaded one times slower
def test_the_wheel_compiles_and_verifies_a_moved_artifact_from_outside_the_checkout(installed):
    python, site, env, tmp = installed
    package = site / "edgeprune"
    assert (package / "profiles" / "host.toml").is_file() and (package / "runtimes" / "runner.py").is_file()
    work = tmp / "work"
    (work / "models").mkdir(parents=True)

    # a small model and DATA, made here (the test's own environment)
    from edgeprune.data import digits
    from edgeprune.frontend.export import export_module
    from edgeprune.zoo import get

    export_module(get("digits_cnn", width=32), (1, 1, 64, 64), work / "models" / "digits.onnx")
    d = digits("test", size=64)
    np.savez(work / "models" / "digits.npz", input=np.asarray(d.images[:32], dtype=np.float32))

    before = _listing(site)
    edgeprune = [python, "-m", "edgeprune"]
    where = _run([python, "-c", "import edgeprune, sys; print(edgeprune.__file__); print(sys.path)"], work, env)
    assert where.stdout.splitlines()[0] == str(package / "__init__.py")
    assert str(REPO) not in where.stdout

    version = _run([venv_bin(python) / "edgeprune", "--version"], work, env).stdout
    assert version.startswith("edgeprune 0.1.0 (") and "onnxruntime" in version

    devices = json.loads(_run(edgeprune + ["devices", "--json"], work, env).stdout)
    names = {p["name"]: p for p in devices["profiles"]}
    assert {"host", "pixel-7"} <= set(names)
    assert all(Path(p["path"]).is_relative_to(package) for p in names.values())

    # the user's own `host` profile (a user profile wins over the packaged one of that name):
    # a fixed channel step and short timing, so the fresh LUT takes seconds, not a step sweep
    # that a loaded machine may read as 1 (thousands of entries)
    timing = r"(?m)^(warmup|repeats|min_seconds|passes|precision|max_seconds|reference) = .*\n"
    quick = re.sub(timing, "", (package / "profiles" / "host.toml").read_text()).replace(
        'channel_step = "measure"', "channel_step = 8\nwarmup = 1\nrepeats = 5\nmin_seconds = 0.0\npasses = 1")
    user_profiles = tmp / "home" / ".config" / "edgeprune" / "profiles"
    user_profiles.mkdir(parents=True)
    (user_profiles / "host.toml").write_text(quick)

    compile_ = [venv_bin(python) / "edgeprune", "compile", "models/digits.onnx", "--target", "host",
                "--data", "models/digits.npz", "--max-size", "5", "--min-fidelity", "0.5", "--quiet",
                "-o", "dist/digits"]
    out = _run(compile_ + ["--budget", "0.6x"], work, env, timeout=900, ok=(0, 3))
    if out.returncode == 3:
        # the budget was missed by timing noise on a loaded machine (the message says so);
        # what is checked here is the installed package, so once more with room to spare
        assert "0.6x" in out.stderr, out.stderr
        out = _run(compile_ + ["--budget", "0.85x"], work, env, timeout=900)
    assert "gates: --max-size held, --min-fidelity held" in out.stdout
    art = work / "dist" / "digits"
    manifest = json.loads((art / "manifest.json").read_text())
    versions = manifest["provenance"]["versions"]
    assert versions["edgeprune"] == "0.1.0" and versions["onnx"] and versions["onnxruntime"]
    assert manifest["provenance"]["runtime"]["tag"] == manifest["provenance"]["lut"]["tag"]
    assert "reference/dense.onnx" in manifest["files"]
    luts = list((tmp / "home" / ".cache" / "edgeprune" / "luts").glob("host-ort-*.json"))
    assert len(luts) == 1 and manifest["lut"]["path"] == str(luts[0])

    # the artifact is downloaded elsewhere; the model it came from is gone, DATA moved
    moved = tmp / "elsewhere"
    moved.mkdir()
    shutil.move(art, moved / "digits")
    shutil.move(work / "models", tmp / "models-moved")
    verified = _run([venv_bin(python) / "edgeprune", "verify", "digits", "--data",
                     tmp / "models-moved" / "digits.npz", "--min-fidelity", "0.5", "--max-size", "5"],
                    moved, env, timeout=600)
    assert "fidelity vs dense: top-1 agreement" in verified.stdout

    summary = _run([venv_bin(python) / "edgeprune", "report", "digits", "--image-base",
                    "https://github.com/o/r/releases/download/v1"], moved, env).stdout
    assert "](https://github.com/o/r/releases/download/v1/channels.png)" in summary

    assert _listing(site) == before, "something was written under site-packages"


def venv_bin(python: Path) -> Path:
    return python.parent
