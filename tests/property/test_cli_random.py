"""`inspect --json` and `prune --ratio` through the CLI on random graphs: well-formed
reports, and a pruned model that loads, runs and keeps its output shapes."""

import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
from hypothesis import HealthCheck, given, settings

from edgeprune.cli import main
from edgeprune.frontend.load import load_model
from tests.helpers import random_feeds, run

from .onnxgen import graphs, input_shape, input_shapes
from .test_invariant import CI


# capsys is drained before each use, so sharing it across examples is safe
@settings(CI, max_examples=25, suppress_health_check=[*CI.suppress_health_check, HealthCheck.function_scoped_fixture])
@given(graph=graphs())
def test_inspect_and_prune_through_the_cli(graph, capsys):
    _, proto = graph
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "random.onnx", Path(tmp) / "pruned.onnx"
        src.write_bytes(proto.SerializeToString())
        capsys.readouterr()
        assert main(["inspect", str(src), "--input-shape", input_shape(proto), "--json", "--round-to", "1"]) == 0
        report = json.loads(capsys.readouterr().out)
        for g in report["groups"]:
            assert g["channels"] >= 1 and g["members"]
            assert g["prunable"] == (g["frozen_reason"] is None)
        totals = report["totals"]
        assert totals["macs"]["after"] <= totals["macs"]["before"]
        assert totals["params"]["after"] <= totals["params"]["before"]
        if report["prunable_groups"]:
            assert totals["params"]["after"] < totals["params"]["before"]

        assert main(["prune", str(src), "--input-shape", input_shape(proto), "--ratio", "0.5", "--round-to", "1",
                     "-o", str(out)]) == 0, \
            capsys.readouterr().err
        onnx.checker.check_model(onnx.load(out))
        original, pruned = load_model(src, input_shapes(proto)), load_model(out)
        feeds = random_feeds(original)
        for a, b in zip(run(original.proto, feeds), run(pruned.proto, feeds)):
            assert a.shape == b.shape and np.isfinite(b).all()
