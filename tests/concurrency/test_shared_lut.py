"""Two writers of one LUT at once (file lock + re-read + merge + atomic replace): no entry
lost, none duplicated."""

from __future__ import annotations

import json
import multiprocessing as mp
import re

import pytest

from edgeprune.lut.layers import Signature
from edgeprune.lut.table import LutWriter, load_lut
from tests.faults.harness import (REPO, conv_chain, duplicated_keys, profile_command, raw_entries,
                                    start, write_quick_profile)

HEADER = {"device": "testhost", "backend": "ort", "threads": 1, "clock": "cpu", "channel_step": 8}
SHARED = Signature("conv", kernel=(3, 3), in_hw=(8, 8))


def _writer(path, tag, own_sig, barrier, n_own, n_shared):
    writer = LutWriter(path, HEADER)
    barrier.wait()
    for i in range(max(n_own, n_shared)):
        if i < n_own:
            writer.add(own_sig, 8 + i, 16, {"median_ms": 1.0 + i, "p90_ms": 2.0 + i, "count": 3, "run": tag})
        if i < n_shared:
            writer.add(SHARED, 8, 8 + i, {"median_ms": 1.0, "p90_ms": 2.0, "count": 3, "run": tag})
    writer.set_model(f"model-{tag}", {"rest_ms": 0.5, "dense_ms": 1.0})


def test_two_processes_adding_entries_at_once_lose_and_duplicate_nothing(tmp_path):
    path = tmp_path / "lut.json"
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(2)
    sigs = {"a": Signature("conv", kernel=(1, 1), in_hw=(8, 8)), "b": Signature("dwconv", kernel=(3, 3), in_hw=(8, 8))}
    procs = [ctx.Process(target=_writer, args=(path, tag, sigs[tag], barrier, 40, 15)) for tag in sigs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert duplicated_keys(path) == []
    lut = load_lut(path)
    for tag, sig in sigs.items():
        assert sorted(e.c_in for e in lut.points(sig.key)) == list(range(8, 48)), tag
    shared = lut.points(SHARED.key)
    assert sorted(e.c_out for e in shared) == list(range(8, 23))
    for e in shared:   # both processes' measurements of the same entry are kept, once each
        assert sorted(r["run"] for r in e.runs) == ["a", "b"]
    assert set(lut.models) == {"model-a", "model-b"}
    assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]


@pytest.mark.slow
def test_two_profile_runs_on_one_lut_at_once(tmp_path):
    profile = write_quick_profile(tmp_path)
    a = conv_chain(tmp_path / "a.onnx", 16, [32, 48, 32], [3, 1, 3])
    b = conv_chain(tmp_path / "b.onnx", 8, [24, 40], [5, 1])
    lut = tmp_path / "lut.json"
    procs = [start(profile_command(profile, lut, m), REPO) for m in (a, b)]
    measured = 0
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        measured += int(re.search(r"(\d+) entries measured", out).group(1))
    assert duplicated_keys(lut) == []
    # a and b share no layer signature, so every entry either run measured is in the LUT
    assert len(raw_entries(lut)) == measured
    doc = json.loads(lut.read_text())
    assert len(doc["models"]) == 2
    assert {e["sig"].split("|")[6] for e in doc["entries"]} == {"16x16", "8x8"}
    load_lut(lut)
