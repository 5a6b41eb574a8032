"""ORT backend: portable optimised ONNX, ORT-format model, provider config; each checked on host."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from edgeprune.backends.base import Artifact, TargetSpec
from edgeprune.backends.ort import OrtBackend, run_on_host
from edgeprune.backends.verify import compare, random_inputs, reference_outputs
from edgeprune.devices.profile import load_profile
from edgeprune.errors import UsageError


def test_host_artifact_holds_optimised_onnx_ort_format_and_config(tiny_model, tmp_path):
    art = OrtBackend().compile(tiny_model, TargetSpec(), tmp_path)

    assert set(art.files) == {"model", "ort_model", "config"}
    # an ORT-format model is a flatbuffer with the "ORTM" file identifier
    assert art.path("ort_model").read_bytes()[4:8] == b"ORTM"
    onnx.checker.check_model(onnx.load(art.path("model")))
    config = json.loads(art.path("config").read_text())
    assert config["providers"] == ["CPUExecutionProvider"]
    assert art.notes["host_check"]["ok"]


def test_what_runs_is_the_onnx_model_at_the_runtime_configurations_level(tiny_model, tmp_path):
    """The runner, the LUT and the dense reference all load at ORT_ENABLE_ALL: the artifact
    says so in its config and in the runner options it is timed with."""
    art = OrtBackend().compile(tiny_model, TargetSpec(), tmp_path)
    config = json.loads(art.path("config").read_text())

    assert config["model"] == "model.opt.onnx"
    assert config["graph_optimization_level"] == "ORT_ENABLE_ALL"
    assert art.run["model"] == "model.opt.onnx"
    assert art.run["options"]["graph_optimization_level"] == "all"
    assert art.run["options"]["session_config"] == config["session_config"]
    assert config["runtime"]["optimization"] == "all"


def test_optimised_onnx_model_stays_portable(tiny_model, tmp_path):
    """No host-specific NCHWc layout in the ONNX file: the device's session adds its own."""
    art = OrtBackend().compile(tiny_model, TargetSpec(), tmp_path)
    domains = {n.domain for n in onnx.load(art.path("model")).graph.node}
    assert "com.microsoft.nchwc" not in domains


def test_outputs_match_reference_on_fresh_inputs(tiny_model, tmp_path):
    art = OrtBackend().compile(tiny_model, TargetSpec(), tmp_path)
    feeds = random_inputs(art.inputs, seed=7)
    cmp = compare(run_on_host(art, feeds), reference_outputs(tiny_model.proto, feeds), atol=1e-5)
    assert cmp.ok, cmp


def test_android_accelerator_profile_records_its_providers_and_keeps_basic_level(tiny_model, tmp_path):
    spec = TargetSpec.from_profile(load_profile("snapdragon-8-gen2"))
    art = OrtBackend().compile(tiny_model, spec, tmp_path)

    config = json.loads(art.path("config").read_text())
    assert config["providers"] == ["QNNExecutionProvider", "XnnpackExecutionProvider", "CPUExecutionProvider"]
    # fusions into CPU-only contrib ops would hide nodes from QNN/XNNPACK
    assert art.notes["offline_optimization_level"] == "basic"
    assert art.notes["ort_format_optimization_level"] == "basic"
    assert config["session_config"]["session.qdqisint8allowed"] == "1"
    assert art.run["options"] == {"providers": config["providers"], "graph_optimization_level": "all",
                                  "session_config": {"session.qdqisint8allowed": "1"}}
    # the host lacks QNN and XNNPACK: the check ran on the CPU provider
    assert art.notes["host_check"]["model"]["providers"] == ["CPUExecutionProvider"]


def test_cpu_fallback_is_appended_to_accelerator_only_lists(tiny_model, tmp_path):
    spec = TargetSpec(name="phone", triple="aarch64-linux-android", ort_providers=("NnapiExecutionProvider",))
    art = OrtBackend().compile(tiny_model, spec, tmp_path)
    assert art.target["providers"] == ["NnapiExecutionProvider", "CPUExecutionProvider"]


def test_unknown_provider_is_a_usage_error_naming_it(tiny_model, tmp_path):
    spec = TargetSpec(name="odd", ort_providers=("WarpDriveExecutionProvider",))
    with pytest.raises(UsageError, match="WarpDriveExecutionProvider"):
        OrtBackend().compile(tiny_model, spec, tmp_path)
    assert not (tmp_path / "model.ort").exists()
    assert not (tmp_path / "model.opt.onnx").exists()


def test_artifact_description_round_trips(tiny_model, tmp_path):
    art = OrtBackend().compile(tiny_model, TargetSpec(), tmp_path)
    again = Artifact.load(tmp_path, "ort")
    assert again.to_json() == art.to_json()
    feeds = random_inputs(again.inputs)
    np.testing.assert_allclose(run_on_host(again, feeds)["logits"], run_on_host(art, feeds)["logits"])


def test_backends_are_found_by_name_and_unknown_names_listed():
    from edgeprune import backends

    assert isinstance(backends.get("ort"), OrtBackend)
    assert backends.get("tvm").name == "tvm"
    with pytest.raises(UsageError, match="known: ort, tvm"):
        backends.get("tflite")
