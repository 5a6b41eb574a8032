"""A small real compile setup shared by the pipeline, compile, verify and report tests: the
zoo's digits CNN (width 32, 64x64) as .onnx, digits images as DATA, a device profile for this host with a fixed
channel step (no step sweep), and its LUT measured once per test session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.host_profile import host_profile

SIZE = 64
# this host, with a fixed channel step so no step sweep runs, and no energy sensor
PROFILE = host_profile(power="none")
# the same host reached as a device that cannot be timed (adb without a serial): compile plans
# from the LUT measured with PROFILE and builds the artifact, its latency labelled a
# prediction. For tests of what a compile produces, not of how fast it ships: they time
# nothing, so they need not run alone (tests/conftest.py SERIAL_FILES)
UNTIMED_PROFILE = PROFILE.replace('kind = "local"', 'kind = "adb"')


@dataclass(frozen=True)
class Setup:
    root: Path
    onnx: Path       # the dense model
    data: Path       # DATA .npz keyed by input name (24 digit images)
    profile: Path    # host profile with channel_step = 8
    lut: Path        # its LUT, holding every entry the model needs

    def args(self, out: Path, *extra: str, data: bool = True) -> list[str]:
        """`compile` arguments for this setup (DATA included unless data=False)."""
        a = ["compile", str(self.onnx), "--target", str(self.profile), "--lut", str(self.lut),
             "--quiet", "-o", str(out)]
        if data:
            a += ["--data", str(self.data)]
        return a + list(extra)


def _build(root: Path) -> Setup:
    from edgeprune.data import digits
    from edgeprune.frontend.export import export_module
    from edgeprune.lut.api import measure_model_entries
    from edgeprune.devices.profile import parse_device
    from edgeprune.frontend.load import load_model
    from edgeprune.zoo import get

    root.mkdir(parents=True, exist_ok=True)
    # wide enough, at 64x64, that the convolutions and not the session overhead dominate
    onnx_path = export_module(get("digits_cnn", width=32), (1, 1, SIZE, SIZE), root / "digits.onnx")
    d = digits("test", size=SIZE)
    np.savez(root / "digits.npz", input=np.asarray(d.images[:24], dtype=np.float32))
    profile = root / "testhost.toml"
    profile.write_text(PROFILE)
    lut = root / "lut.json"
    measure_model_entries(load_model(onnx_path), parse_device(str(profile)), "ort", lut)
    return Setup(root, onnx_path, root / "digits.npz", profile, lut)


@pytest.fixture(scope="session")
def setup(tmp_path_factory) -> Setup:
    # the same folder for every module importing this fixture: the LUT is measured once
    root = tmp_path_factory.getbasetemp() / "edgeprune-compile-setup"
    if (root / "lut.json").is_file():
        return Setup(root, root / "digits.onnx", root / "digits.npz", root / "testhost.toml", root / "lut.json")
    return _build(root)


@pytest.fixture(scope="session")
def compiled(setup, tmp_path_factory) -> Path:
    """One finished compile with DATA (read-only for the tests that use it)."""
    from edgeprune.cli import main

    out = tmp_path_factory.getbasetemp() / "edgeprune-compiled" / "out"
    if not (out / "manifest.json").is_file():
        assert main(setup.args(out, "--budget", "0.7x")) == 0
    return out


def looks_complete(path: Path) -> bool:
    return (path / "manifest.json").exists()


def leftovers(parent: Path, name: str) -> list[Path]:
    """Staging folders of `name` left in `parent`."""
    return list(parent.glob(f".{name}.edgeprune-*"))
