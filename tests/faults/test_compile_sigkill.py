"""SIGKILL during `compile` never leaves an OUTDIR that looks complete: either no OUTDIR, or
the previous complete one untouched (every file matching its manifest hash). The next run
succeeds and clears what the killed one left behind."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgeprune.lut.table import load_lut
from edgeprune.outdir import sha256_file
from tests.faults.profiling import (REPO, conv_chain, copy_files, profile_command, run_and_kill,
                                    write_quick_profile)


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compile")
    profile = write_quick_profile(folder)
    model = conv_chain(folder / "model.onnx", 16, [32, 32], [3, 3])
    p = subprocess.run(profile_command(profile, folder / "lut.json", model), cwd=REPO,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    return folder


@pytest.fixture
def work(measured, tmp_path):
    return copy_files(measured, tmp_path, "quickhost.toml", "model.onnx", "lut.json")


def compile_command(work, budget="0.9x"):
    return [sys.executable, "-m", "edgeprune", "compile", str(work / "model.onnx"), "--target",
            str(work / "quickhost.toml"), "--lut", str(work / "lut.json"), "--budget", budget,
            "-o", str(work / "out"), "--quiet"]


def _staging(work) -> list:
    return [p for p in work.iterdir() if p.name.startswith(".out.edgeprune-")]


def _staged(work, name=None):
    def ready():
        for s in _staging(work):
            if name is None or (s / name).exists():
                return True
        return False
    return ready


def assert_complete(outdir) -> dict:
    manifest = json.loads((outdir / "manifest.json").read_text())
    on_disk = {p.relative_to(outdir).as_posix() for p in outdir.rglob("*") if p.is_file()} - {"manifest.json"}
    assert on_disk == set(manifest["files"])
    for name, digest in manifest["files"].items():
        assert sha256_file(outdir / name) == digest, name
    return manifest


def _visible(work) -> set[str]:
    return {p.name for p in work.iterdir() if not p.name.startswith(".")}


def _finish(work, budget="0.9x") -> dict:
    done = subprocess.run(compile_command(work, budget), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert not _staging(work), "the next run clears staging folders left by killed runs"
    load_lut(work / "lut.json")
    return assert_complete(work / "out")


@pytest.mark.slow
@pytest.mark.parametrize("when", [None, "model.onnx", "report.md"], ids=["staging", "model", "report"])
def test_a_killed_first_compile_leaves_no_outdir(work, when):
    inputs = _visible(work)
    assert run_and_kill(compile_command(work), _staged(work, when)), "compile finished before the kill"
    assert not (work / "out").exists(), "a killed run left an OUTDIR"
    assert _visible(work) == inputs
    load_lut(work / "lut.json")      # whatever the run measured, the LUT is not corrupt
    _finish(work)


@pytest.mark.slow
def test_a_killed_recompile_leaves_the_previous_artifact_intact(work):
    first = _finish(work, "0.9x")
    assert run_and_kill(compile_command(work, "0.7x"), _staged(work, "model.onnx"))
    assert assert_complete(work / "out") == first
    second = _finish(work, "0.7x")
    assert second["budget"]["text"] == "0.7x"
