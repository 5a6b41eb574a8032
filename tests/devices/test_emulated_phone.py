"""A phone with no Python, end to end: detected over adb, profiled, compiled for with ONNX
Runtime and with TVM, and verified, everything on the device side running as aarch64 code
under qemu inside an arm64 root filesystem that holds busybox and nothing of this host's
(tests/devices/emulated_phone.py). ONNX Runtime and TVM start inside the device bundle
edgeprune pushes, through the bundle's own loader.

Emulated timings prove the mechanics, not speed: the phone's detected profile is given a fixed
channel step, short timings and the thread CPU clock (as a user may edit it), because sweeping
the staircase under qemu measures qemu, and the other test worker shares these cores.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from torch import nn

from edgeprune.cli import main
from tests.devices.adb_phone import SERIAL
from tests.devices.emulated_phone import EmulatedPhone, unavailable
from tests.helpers import export

pytestmark = pytest.mark.slow
PHONE = f"adb:{SERIAL}"


class PhoneNet(nn.Module):
    """Two 3x3 convs and a linear head: wide enough that pruning is faster even under qemu."""

    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc(self.b(self.a(x)).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def phone(tmp_path_factory):
    why = unavailable()
    if why:
        pytest.skip(f"no emulated phone here: {why}")
    from edgeprune.devices.bundle_build import ensure_bundle

    folder = tmp_path_factory.mktemp("phone")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGEPRUNE_CONFIG_DIR", str(folder / "config"))
        torch.manual_seed(0)
        model = folder / "phonenet.onnx"
        model.write_bytes(export(PhoneNet().eval(), (1, 3, 16, 16)).proto.SerializeToString())
        yield EmulatedPhone(folder, mp, ensure_bundle()), model, folder


def edgeprune(*argv) -> int:
    return main(list(map(str, argv)))


def test_the_phone_has_busybox_and_no_python(phone):
    p, _, _ = phone
    out = p.shell("getprop ro.product.cpu.abi; uname -m; ls /system/bin/python3 2>&1; true")
    assert out.stdout.split()[:2] == ["arm64-v8a", "aarch64"] and "No such file" in out.stdout
    assert p.pythons() == []
    machine = subprocess.run(["file", "-L", str(p.root / "system/bin/sh")], capture_output=True, text=True).stdout
    assert "ARM aarch64" in machine


def test_profile_reads_the_phone_then_measures_a_lut_inside_the_pushed_bundle(phone, capsys):
    p, model, folder = phone
    from edgeprune.devices.detect import with_profile
    from edgeprune.devices.profile import parse_device

    profile = with_profile(parse_device(PHONE)).profile
    assert profile.cpu["arch"] == "aarch64" and profile.tvm_target()["mtriple"] == "aarch64-linux-gnu"
    text = Path(profile.path).read_text()
    assert 'channel_step = "measure"' in text
    Path(profile.path).write_text(text.replace('channel_step = "measure"', "channel_step = 16\nwarmup = 1\n"
                                               "repeats = 3\nmin_seconds = 0.0\nclock = \"cpu\""))
    for backend in ("ort", "tvm"):
        assert edgeprune("profile", "--device", PHONE, "--backend", backend, "--model", model,
                         "--output", folder / f"lut-{backend}.json") == 0, capsys.readouterr().err
    runner = [c[3] for c in p.adb_calls() if c[2] == "shell" and "runner.py" in c[3]]
    assert runner and all("bundle/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1" in r for r in runner)
    assert p.pythons() == []      # Python reached the phone only inside edgeprune's bundle


# The ORT case costs 35 s under qemu, so CI leaves it to `make test-extended`: ONNX Runtime
# runs on the phone in the profile above (the same runner, inside the pushed bundle), and the
# TVM case takes compile's whole path over adb (closed loop, outputs, verify) on the phone
@pytest.mark.parametrize("backend", [pytest.param("ort", marks=pytest.mark.extended), "tvm"])
def test_compile_for_the_phone_runs_the_artifact_there_and_matches_the_host(phone, backend, capsys):
    p, model, folder = phone
    out = folder / f"dist-{backend}"
    code = edgeprune("compile", model, "--target", PHONE, "--backend", backend, "--quantize", "none",
                     "--lut", folder / f"lut-{backend}.json", "--budget", "0.8x", "-o", out)
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    v = manifest["verify"]
    assert v["measured_on"] == PHONE and v["measured_median_ms"] > 0
    # the phone's outputs on the sample, against ONNX Runtime's on this host
    assert v["device_outputs_max_abs_error"] < 1e-4
    if backend == "tvm":
        art = json.loads((out / "tvm/tvm.artifact.json").read_text())
        elf = subprocess.run(["readelf", "-h", str(out / "tvm" / art["files"]["model"])],
                             capture_output=True, text=True).stdout
        # an aarch64 shared library linked by the glibc toolchain: the bundle's TVM runtime,
        # which loaded it on the phone above, is glibc's
        assert "AArch64" in elf and "DYN" in elf
        assert art["notes"]["export"]["compiler"].endswith("aarch64-linux-gnu-gcc")
        # the artifact re-run on the phone from its folder alone (ORT's run is the one above)
        assert edgeprune("verify", out) == 0, capsys.readouterr().err
