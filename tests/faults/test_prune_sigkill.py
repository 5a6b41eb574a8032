"""SIGKILL during `prune -o OUT.onnx` leaves either no OUT.onnx or a complete one: the model
is written to a hidden temporary file and renamed into place."""

from __future__ import annotations

import sys

import onnx
import pytest

from edgeprune.frontend.load import load_model
from tests.faults.harness import conv_chain, run_and_kill


def _prune(src, out):
    return [sys.executable, "-m", "edgeprune", "prune", str(src), "--ratio", "0.5", "--round-to", "1",
            "-o", str(out)]


@pytest.mark.slow
def test_a_killed_prune_never_leaves_a_partial_model(tmp_path):
    # wide layers: tens of MB to write, so the kill can land during the write
    src = conv_chain(tmp_path / "wide.onnx", 8, [512, 512, 512, 16], [3, 3, 3, 1])
    out = tmp_path / "pruned.onnx"
    temp_seen = run_and_kill(_prune(src, out), lambda: any(p.name.startswith(".pruned.onnx")
                                                          for p in tmp_path.iterdir()))
    if out.exists():   # the rename happened before the kill: then it is whole
        onnx.checker.check_model(onnx.load(out))
    assert temp_seen or out.exists()
    visible = {p.name for p in tmp_path.iterdir() if not p.name.startswith(".")}
    assert visible <= {"wide.onnx", "pruned.onnx"}
    done = run_and_kill(_prune(src, out), lambda: False)   # the next run completes
    assert not done and out.exists()
    pruned = load_model(out)
    assert sum(t.dims[0] for t in pruned.proto.graph.initializer if len(t.dims) == 4) < 512 * 3 + 16
