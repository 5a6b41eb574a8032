"""`edgeprune profile` through a phone over adb (the stand-in `adb` on PATH)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeprune.cli import main
from edgeprune.frontend.load import load_model
from edgeprune.lut.layers import model_layers
from edgeprune.lut.table import load_lut
from tests.devices.adb_phone import SERIAL, Phone
from tests.devices.micro import micro_onnx

pytestmark = pytest.mark.slow


def phone_profile(folder: Path, step: int, min_seconds: float) -> Path:
    """A phone profile reached over adb, with a fixed channel step and short timings."""
    path = Path(folder) / "testphone.toml"
    path.write_text(f'''
name = "testphone"
description = "the stand-in phone"
[reach]
kind = "adb"
address = "adb:{SERIAL}"
[cpu]
arch = "aarch64"
cores = 4
[runtimes.ort]
providers = ["CPUExecutionProvider"]
[measure]
channel_step = {step}
threads = 1
warmup = 1
repeats = 3
min_seconds = {min_seconds}
[power]
kind = "battery"
path = "/sys/class/power_supply/battery"
''')
    return path


def covers(lut_path: Path, model: Path) -> bool:
    table = load_lut(lut_path)
    return all(table.get(l.signature.key, l.c_in, l.c_out) is not None for l in model_layers(load_model(model)))


def test_profile_builds_a_lut_through_adb(tmp_path, monkeypatch, capsys):
    phone = Phone(tmp_path / "phone", monkeypatch)
    model, lut = micro_onnx(tmp_path), tmp_path / "lut.json"
    assert main(["profile", "--device", f"adb:{SERIAL}", "--model", str(model), "-o", str(lut)]) == 0
    assert covers(lut, model)
    table = load_lut(lut)
    # the phone was read once and got a profile of its own (an arm64 Android phone)
    assert table.header["device"] == f"adb-{SERIAL}"
    run = next(iter(table.entries.values())).runs[0]
    assert run["energy_source"] == "battery" and run["state"]["governor"] == "performance"
    assert set(phone.measured().values()) == {1}


def test_a_phone_lost_midway_exits_5_and_resume_completes_measuring_nothing_twice(tmp_path, monkeypatch, capsys):
    phone = Phone(tmp_path / "phone", monkeypatch)
    model, lut, profile = micro_onnx(tmp_path), tmp_path / "lut.json", phone_profile(tmp_path, step=1, min_seconds=0.3)
    phone.go_offline_after(3)
    assert main(["profile", "--device", str(profile), "--model", str(model), "-o", str(lut)]) == 5
    assert "device offline" in capsys.readouterr().err
    kept = {k: e.runs for k, e in load_lut(lut).entries.items()}
    assert kept   # saved entry by entry before the phone went away

    phone.reconnect()
    assert main(["profile", "--device", str(profile), "--model", str(model), "-o", str(lut), "--resume"]) == 0
    assert f"{len(kept)} kept from before" in capsys.readouterr().out
    assert covers(lut, model)
    after = load_lut(lut).entries
    for key, runs in kept.items():  # nothing kept was measured again
        assert after[key].runs == runs
    # and on the phone itself no task ran twice across the two sessions: what it finished
    # after the link dropped was picked up from it, not measured again
    counts = phone.measured()
    assert counts and set(counts.values()) == {1}


def test_a_phone_given_by_serial_alone_is_read_once_and_gets_an_aarch64_android_profile(tmp_path, monkeypatch):
    from edgeprune.devices.detect import with_profile
    from edgeprune.devices.profile import parse_device

    phone = Phone(tmp_path / "phone", monkeypatch)
    spec = with_profile(parse_device(f"adb:{SERIAL}"))
    p = spec.profile
    assert p.name == f"adb-{SERIAL}" and p.reach == "adb" and p.address == f"adb:{SERIAL}"
    assert p.cpu["arch"] == "aarch64" and p.cpu["cores"] == 2
    assert [c["max_mhz"] for c in p.cpu["clusters"]] == [1800, 2850]
    target = p.tvm_target()
    # the bundle's TVM runtime that loads the phone's libraries is glibc's
    assert target["mtriple"] == "aarch64-linux-gnu" and {"+neon", "+dotprod"} <= set(target["mattr"])
    assert p.cores == [1]   # the big core
    calls = len(phone.adb_calls())
    again = with_profile(parse_device(f"adb:{SERIAL}"))   # reused, not read again
    assert again.profile.path == p.path and len(phone.adb_calls()) == calls


def test_an_artifact_compiled_for_a_phone_by_serial_is_built_for_its_architecture(tmp_path, monkeypatch):
    from edgeprune.backends.base import TargetSpec
    from edgeprune.devices.detect import with_profile
    from edgeprune.devices.profile import parse_device
    from edgeprune.lut.session import spec_runtime

    Phone(tmp_path / "phone", monkeypatch)
    spec = with_profile(parse_device(f"adb:{SERIAL}"))
    target = TargetSpec.from_profile(spec.profile)
    assert target.triple == "aarch64-linux-gnu"
    # an arm64 ORT artifact lets int8 QDQ run as integer kernels (x86-only setting off)
    assert dict(spec_runtime(spec, "ort").session_config).get("session.qdqisint8allowed") != "0"

