"""The profiler measures through a backend: ORT runs the micro-model, TVM its compiled library."""

import pytest

from edgeprune.devices.open import open_device
from edgeprune.lut.layers import Signature
from edgeprune.lut.profiler import Profiler
from edgeprune.lut.session import lut_header, profile_settings
from edgeprune.lut.table import LutWriter, load_lut
from tests.lut.tiny import fast_profile

SIG = Signature(kind="conv", kernel=(3, 3), pads=(1, 1, 1, 1), in_hw=(8, 8), act="relu")


@pytest.mark.parametrize("backend", ["ort", pytest.param("tvm", marks=pytest.mark.slow)])
def test_ensure_measures_each_missing_point_once_and_saves_it(tmp_path, backend):
    device = open_device(str(fast_profile(tmp_path)))
    writer = LutWriter(tmp_path / "lut.json", lut_header(device, backend, 16))
    profiler = Profiler(device, writer, profile_settings(device, backend), workdir=tmp_path / "w")
    points = [(SIG, 16, 16), (SIG, 16, 32), (SIG, 16, 16)]
    profiler.ensure(points)
    assert profiler.measured == 2
    lut = load_lut(tmp_path / "lut.json")
    assert lut.header["backend"] == backend
    for ci, co in [(16, 16), (16, 32)]:
        e = lut.get(SIG.key, ci, co)
        assert e is not None and e.median_ms > 0 and e.count >= 3
    again = Profiler(device, writer, profile_settings(device, backend), workdir=tmp_path / "w")
    again.ensure(points)
    assert again.measured == 0 and again.reused == 2
