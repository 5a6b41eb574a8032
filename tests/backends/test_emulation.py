"""aarch64 artifacts run by the device runner under qemu reproduce the host's reference.

The arm64 root filesystem is built once by runtimes/emulation/build_rootfs.sh and cached
($EDGEPRUNE_CACHE or ~/.cache/edgeprune); the first run also installs the host's Debian
packages (qemu-user-static, mmdebstrap, the aarch64 cross compiler).
"""

from __future__ import annotations

import pytest

from edgeprune import zoo
from edgeprune.backends.base import TargetSpec
from edgeprune.backends.emulation import emulation_available, ensure_host_tools, verify_emulated
from edgeprune.backends.ort import OrtBackend
from edgeprune.backends.tvm import TvmBackend
from edgeprune.backends.verify import random_inputs
from edgeprune.devices.profile import load_profile
from edgeprune.frontend.export import export_module
from edgeprune.frontend.load import load_model
from edgeprune.graph import analyze
from edgeprune.importance import scores
from edgeprune.rewrite import prune, ratio_keep

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(emulation_available() is not None, reason=str(emulation_available()))]


@pytest.fixture(scope="module")
def pruned_mobilenetv2(tmp_path_factory):
    path = export_module(zoo.get("mobilenetv2"), zoo.input_shape("mobilenetv2"),
                         tmp_path_factory.mktemp("mbv2") / "mobilenetv2.onnx")
    model = load_model(path)
    analysis = analyze(model)
    pruned = prune(model, analysis, ratio_keep(analysis, scores(model, analysis, "l1"), 0.5))
    assert analyze(pruned).macs < 0.5 * analysis.macs
    return pruned


def test_runner_reproduces_pruned_mobilenetv2_from_ort_and_tvm_artifacts(pruned_mobilenetv2, tmp_path):
    ensure_host_tools()  # the aarch64 cross linker, before the TVM library is exported
    spec = TargetSpec.from_profile(load_profile("raspberry-pi-5"))
    tvm_art = TvmBackend().compile(pruned_mobilenetv2, spec, tmp_path / "tvm")
    ort_art = OrtBackend().compile(pruned_mobilenetv2, spec, tmp_path / "ort")
    assert tvm_art.target["triple"] == ort_art.target["triple"] == "aarch64-linux-gnu"
    assert tvm_art.notes["export"]["format"] == "so"

    inputs = random_inputs(tvm_art.inputs, seed=11)
    results = verify_emulated([tvm_art, ort_art], pruned_mobilenetv2.proto, inputs, atol=1e-4)

    assert set(results) == {"tvm", "ort"}
    for backend, cmp in results.items():
        assert cmp.ok, f"{backend}: {cmp.max_abs_err}"
