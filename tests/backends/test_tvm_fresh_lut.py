"""A first TVM compile on a machine with no TVM LUT: the channel step is measured with TVM
libraries (not ONNX files the TVM runner cannot load), the LUT is built, and the artifact
ships."""

from __future__ import annotations

import json

import pytest

from edgeprune.cli import main
from tests.faults.harness import conv_chain, write_quick_profile

pytest.importorskip("tvm")


@pytest.mark.slow
def test_compile_with_tvm_on_a_fresh_lut_measures_the_step_and_ships(tmp_path):
    profile = write_quick_profile(tmp_path)
    profile.write_text(profile.read_text().replace("channel_step = 8", 'channel_step = "measure"')
                       + '\n[runtimes.tvm]\ntarget = { kind = "llvm" }\n')
    model = conv_chain(tmp_path / "m.onnx", 8, [8, 8], [3, 3])   # few LUT entries: each is a TVM compile
    lut, out = tmp_path / "fresh" / "lut.json", tmp_path / "out"
    assert not lut.exists()
    rc = main(["compile", str(model), "--target", str(profile), "--backend", "tvm", "--budget", "1.0x",
               "--lut", str(lut), "-o", str(out)])
    assert rc == 0
    header = json.loads(lut.read_text())["header"]
    assert header["backend"] == "tvm" and header["channel_step"] >= 1
    assert header["channel_step_sweep"]["median_ms"]
    m = json.loads((out / "manifest.json").read_text())
    assert m["target"]["backend"] == "tvm" and (out / m["verify"]["deployed_files"][0]).is_file()
