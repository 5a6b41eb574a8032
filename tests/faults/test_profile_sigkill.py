"""SIGKILL during `profile` leaves a LUT that loads (never a corrupt or half-written one) and
`profile --resume` completes it, keeping every entry saved before the kill."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from edgeprune.lut.table import load_lut
from tests.faults.harness import (REPO, conv_chain, duplicated_keys, profile_command, run_and_kill,
                                    write_quick_profile)


def _saved_entries(lut) -> int | None:
    try:
        return len(json.loads(lut.read_text())["entries"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return None


def _run_and_kill(cmd, lut, at_entries: int) -> bool:
    """Kill the run once the LUT on disk holds at least `at_entries` entries."""
    def ready():
        n = _saved_entries(lut)
        return n is not None and n >= at_entries
    return run_and_kill(cmd, ready)


def _entries(lut) -> dict[tuple, list]:
    return {(e.sig, e.c_in, e.c_out): list(e.runs) for e in load_lut(lut).entries.values()}


def _assert_only_the_lut_looks_complete(folder):
    # a killed atomic write may leave a hidden temp file, never a second visible artifact
    visible = {p.name for p in folder.iterdir() if not p.name.startswith(".")}
    assert visible <= {"lut.json", "quickhost.toml", "model.onnx"}, visible


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", [0, 1, 20], ids=["header-only", "first-entry", "midway"])
def test_profile_killed_then_resumed_keeps_every_saved_entry(tmp_path, kill_at):
    profile = write_quick_profile(tmp_path)
    model = conv_chain(tmp_path / "model.onnx", 16, [32, 48, 64, 48], [3, 1, 3, 1])
    lut = tmp_path / "lut.json"
    killed = _run_and_kill(profile_command(profile, lut, model), lut, kill_at)
    assert killed, "the profile run finished before it could be killed"

    before = _entries(lut)          # loads: the LUT on disk is never corrupt
    assert len(before) >= kill_at
    assert duplicated_keys(lut) == []
    _assert_only_the_lut_looks_complete(tmp_path)

    done = subprocess.run(profile_command(profile, lut, model, resume=True), cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    kept = int(re.search(r"(\d+) kept from before", done.stdout).group(1))
    assert kept >= len(before)
    after = _entries(lut)
    assert duplicated_keys(lut) == []
    for key, runs in before.items():   # nothing saved before the kill is lost or changed
        assert key in after
        assert all(r in after[key] for r in runs)
    assert len(after) > len(before)
    assert json.loads(lut.read_text())["models"], "the resumed run recorded the model's rest term"


@pytest.mark.slow
def test_profile_killed_twice_still_converges(tmp_path):
    profile = write_quick_profile(tmp_path)
    model = conv_chain(tmp_path / "model.onnx", 16, [32, 48, 64, 48], [3, 1, 3, 1])
    lut = tmp_path / "lut.json"
    assert _run_and_kill(profile_command(profile, lut, model), lut, 5)
    first = _entries(lut)
    assert _run_and_kill(profile_command(profile, lut, model, resume=True), lut, len(first) + 5)
    second = _entries(lut)
    assert set(first) <= set(second)
    done = subprocess.run(profile_command(profile, lut, model, resume=True), cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert set(second) <= set(_entries(lut))
    assert duplicated_keys(lut) == []
