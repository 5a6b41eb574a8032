"""SIGKILL during `compile` never leaves an OUTDIR that looks complete: either no OUTDIR, or
the previous complete one untouched (every file matching its manifest hash). The next run
succeeds and clears what the killed one left behind."""

from __future__ import annotations

import subprocess

import pytest

from edgeprune.lut.table import load_lut
from tests.faults.harness import (BUDGETS, REPO, assert_complete, compile_command, compile_setup, copy_files,
                                 run_and_kill, staging_folders)


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    return compile_setup(tmp_path_factory.mktemp("compile"))


@pytest.fixture
def work(measured, tmp_path):
    return copy_files(measured, tmp_path, "quickhost.toml", "model.onnx", "lut.json")


def _staged(work, name=None):
    def ready():
        for s in staging_folders(work):
            if name is None or (s / name).exists():
                return True
        return False
    return ready


def _visible(work) -> set[str]:
    return {p.name for p in work.iterdir() if not p.name.startswith(".")}


def _finish(work, budget=BUDGETS[0]) -> dict:
    done = subprocess.run(compile_command(work, budget), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert not staging_folders(work), "the next run clears staging folders left by killed runs"
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
    first = _finish(work, BUDGETS[0])
    assert run_and_kill(compile_command(work, BUDGETS[1]), _staged(work, "model.onnx"))
    assert assert_complete(work / "out") == first
    second = _finish(work, BUDGETS[1])
    assert second["budget"]["text"] == BUDGETS[1]
