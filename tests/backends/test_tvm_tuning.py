"""MetaSchedule tuning: a persistent per-target database, reused across runs and across
pruned variants whose layers keep their shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from torch import nn

from edgeprune.backends.base import TargetSpec
from edgeprune.backends.tvm import TvmBackend

from .conftest import export

pytestmark = pytest.mark.slow


class TwoConv(nn.Module):
    def __init__(self, mid: int, out: int):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, mid, 3, padding=1), nn.ReLU())
        self.b = nn.Conv2d(mid, out, 1)

    def forward(self, x):
        return self.b(self.a(x))


def records(db) -> list[dict]:
    path = db / "records.json"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_database_persists_and_serves_later_runs_and_pruned_variants(tmp_path):
    dense = export(TwoConv(8, 8), (1, 3, 16, 16), tmp_path / "dense.onnx")
    # a "pruned" variant: the first layer is untouched, the second lost half its outputs
    pruned = export(TwoConv(8, 4), (1, 3, 16, 16), tmp_path / "pruned.onnx")
    # random candidates: this pins down the database's bookkeeping, not the schedules' quality
    opts = {"tuning_trials": 8, "tuning_trials_per_task": 4, "tuning_strategy": "replay-trace",
            "tuning_cache": str(tmp_path / "cache")}
    spec = TargetSpec(tvm={"kind": "llvm", "num-cores": 1})

    first = TvmBackend().compile(dense, spec, tmp_path / "a", opts)
    tuning = first.notes["tuning"]
    assert tuning["reused"] == 0 and len(tuning["tuned"]) >= 2
    assert len(tuning["tuned"]) + len(tuning["untuned"]) == tuning["tasks"]
    assert any("conv2d" in name for name in tuning["tuned"])
    assert len(records(Path(tuning["database"]))) >= 2
    assert first.notes["host_check"]["ok"]

    again = TvmBackend().compile(dense, spec, tmp_path / "b", opts)
    assert again.notes["tuning"]["tuned"] == [] and again.notes["tuning"]["reused"] == len(tuning["tuned"])
    assert again.notes["host_check"]["ok"]

    # no budget: the variant is compiled from what the database already covers
    variant = TvmBackend().compile(pruned, spec, tmp_path / "c", opts | {"tuning_trials": 0})
    v = variant.notes["tuning"]
    assert v["reused"] >= 1, "the unchanged first layer's workload should come from the database"
    assert v["reused"] < v["tasks"], "the pruned layer is a new workload"
    assert variant.notes["host_check"]["ok"]
