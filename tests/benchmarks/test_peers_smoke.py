"""benchmarks/peers.py runs end to end on a tiny model with tiny settings, so it does not rot.

The digits CNN (width 16, one epoch) on a host profile with a fixed channel step and a LUT
measured into the test's own folder; one budget, one fit try, one timing pass; compile
timed on the zoo's digits CNN (width 8: only a mild budget is reachable) with the same LUT. No timing is asserted: only that every method produced a
measured, pruned model and that the markdown carries the rows, the machine and the command.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from tests.pipeline.fixtures import PROFILE

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.extended   # benchmark code, 40 s: CI leaves it to `make test-extended`
def test_peers_runs_end_to_end_on_the_digits_cnn(tmp_path):
    pytest.importorskip("torch_pruning")  # the dev extra installs it (pyproject.toml)
    profile = tmp_path / "testhost.toml"
    profile.write_text(PROFILE)
    out = tmp_path / "RESULTS.md"
    peers = _load("peers")
    peers.main(["--models", "digits_cnn", "--budgets", "0.7", "--calib", "8", "--eval", "48",
                "--fit-rounds", "1", "--passes", "1", "--lut-configs", "0", "--tvm-trials", "0",
                "--digits-width", "16", "--digits-epochs", "1", "--compile-model", "digits_cnn",
                # the whole budget: on a model this small anything tighter is reachable or not
                # by timing noise in the LUT (dense is always a plan)
                "--compile-budget", "1.0",
                "--device", str(profile), "--lut", str(tmp_path / "lut.json"), "--write", str(out)])
    text = out.read_text()
    assert "--models digits_cnn" in text and "cores" in text
    table = text.split("## Pruning at matched latency")[1].split("\n## ")[0]
    rows = [line for line in table.splitlines() if line.startswith("| digits_cnn | 0.7x |")]
    assert [r.split("|")[3].strip().strip("*") for r in rows] == list(peers.METHODS)
    for r in rows:
        cells = [c.strip() for c in r.split("|")]
        if "no plan" in r:  # an infeasible budget is reported, not dropped
            continue
        ms, fidelity, macs = float(cells[4]), float(cells[6].split()[0]), float(cells[8])
        assert re.fullmatch(r"[0-9.]+ \[[0-9.]+, [0-9.]+\]", cells[6])   # with its Wilson interval
        assert ms > 0 and 0 <= fidelity <= 1 and 0 < macs <= 1
    if "no plan" not in rows[0]:
        assert "## int8" in text
    seconds = re.search(r"\*\*([0-9.]+) s\*\* wall", text)
    assert seconds and float(seconds.group(1)) > 0

    # summary.py merges runs: the same rows and numbers come back out, with the command
    merged = tmp_path / "MERGED.md"
    _load("summary").main([str(out), "-o", str(merged)])
    again = merged.read_text()
    assert "--models digits_cnn" in again and seconds.group(0) in again
    assert [r.split("|")[3:9] for r in rows] == \
        [r.split("|")[3:9] for r in again.splitlines() if r.startswith("| digits_cnn | 0.7x |")][:len(peers.METHODS)]


def test_fit_keep_brackets_the_target_and_keeps_the_closest_from_below():
    timing = _load("peers_timing")
    curve = lambda k: 10.0 * k ** 1.7  # noqa: E731 - a latency that falls with the kept fraction
    calls = []

    def measure(k):
        calls.append(k)
        return f"model@{k}", curve(k)

    cache = {}
    cand, ms, k, tries = timing.fit_keep(measure, 5.0, 10.0, cache, rounds=6, tol=0.02)
    assert ms <= 5.0 * 1.02 and abs(ms / 5.0 - 1) <= 0.02 and cand == f"model@{k}"
    assert tries == len(calls) <= 6
    # a second budget reuses the first's measurements as a bracket
    calls.clear()
    cand, ms, _, _ = timing.fit_keep(measure, 3.0, 10.0, cache, rounds=6, tol=0.02)
    assert abs(ms / 3.0 - 1) <= 0.02 and len(calls) < 6
