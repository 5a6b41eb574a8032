"""`edgeprune.compile(...)`: the command for PyTorch users, from an nn.Module and arrays."""

from __future__ import annotations

import numpy as np
import pytest

import edgeprune
from edgeprune.errors import GateFailed, UsageError
from edgeprune.zoo import get
from tests.pipeline.fixtures import SIZE, setup  # noqa: F401


@pytest.mark.slow
def test_compile_an_nn_module_with_input_shape_and_array_data(setup, tmp_path):
    images = np.load(setup.data)["input"]
    result = edgeprune.compile(get("digits_cnn", width=32), target=str(setup.profile), budget="0.7x",
                               input_shape=(1, 1, SIZE, SIZE), data=images, lut=setup.lut,
                               output=tmp_path / "out", max_size=100)
    m = result.manifest
    assert result.passed and result.report.is_file()
    assert m["source"]["kind"] == "module" and m["source"]["path"] == "DigitsCNN"
    # the budget is 0.7 of dense as it ships, and the plan that ships was measured within it
    lat = m["latency_ms"]
    assert lat["target_ms"] == pytest.approx(0.7 * lat["dense_measured"])
    assert lat["closed_loop"]["measured_ms"] <= lat["target_ms"] * 1.05
    assert "recovered" in m["fidelity"]["stages"]
    assert (tmp_path / "out" / "model.onnx").is_file()


def test_a_failed_gate_raises_after_the_artifact_is_built(setup, tmp_path):
    with pytest.raises(GateFailed, match="--max-size"):
        edgeprune.compile(str(setup.onnx), target=str(setup.profile), budget="0.7x", lut=setup.lut,
                          output=tmp_path / "out", max_size=1e-6)
    assert (tmp_path / "out" / "manifest.json").is_file()


def test_a_module_without_input_shape_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="input_shape"):
        edgeprune.compile(get("digits_cnn"), budget="0.5x", output=tmp_path / "out")
    assert not (tmp_path / "out").exists()
