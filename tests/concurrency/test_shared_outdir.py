"""Two `compile` runs into one OUTDIR at once: each builds in its own staging folder and
swaps it in whole, so the OUTDIR ends as one complete artifact (never a mix of the two)."""

from __future__ import annotations

import subprocess

import pytest

from tests.faults.harness import BUDGETS, REPO, assert_complete, compile_command, compile_setup, staging_folders


@pytest.mark.slow
def test_two_compiles_into_one_outdir_leave_one_complete_artifact(tmp_path):
    work = compile_setup(tmp_path)
    budgets = BUDGETS
    procs = [subprocess.Popen(compile_command(work, b), cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for b in budgets]
    for p in procs:
        _, err = p.communicate(timeout=900)
        assert p.returncode == 0, err
    manifest = assert_complete(work / "out")
    assert manifest["budget"]["text"] in budgets
    assert not staging_folders(work), "staging folders left"
