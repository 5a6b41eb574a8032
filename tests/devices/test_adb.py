"""Phones over adb, driven through a stand-in `adb` that behaves like one attached device."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgeprune.devices.adb import AdbDevice, _link_failure
from edgeprune.devices.base import BenchTask
from edgeprune.devices.profile import parse_device
from edgeprune.errors import DeviceError
from tests.devices.adb_phone import SERIAL, Phone
from tests.devices.micro import conv_model, tasks_for


@pytest.fixture
def phone(tmp_path, monkeypatch):
    return Phone(tmp_path / "phone", monkeypatch)


def test_measures_on_the_phone_with_its_state_and_battery_energy(phone, tmp_path):
    device = AdbDevice(parse_device(f"adb:{SERIAL}"))
    core = max(os.sched_getaffinity(0))  # the stand-in phone's cores are this machine's
    tasks = tasks_for(tmp_path, (8, 16, 24), cores=[core])
    tasks[0].save_outputs = True
    seen = []
    results = device.measure(tasks, on_result=seen.append)

    assert [r.id for r in seen] == [t.id for t in tasks] and results == seen
    for r in results:
        assert r.ok and r.median_ms > 0 and r.p90_ms >= r.median_ms and r.count >= 3
        # the state read from the phone's sysfs beside every measurement
        assert r.state["governor"] == "performance"
        assert r.state["freq_khz"] == [1800000, 1900000]
        assert r.state["thermal_mc"] == [41000, 38500]
        # 0.35 A x 3.9 V = 1.365 W, integrated over the timed loop (which also holds the
        # loop's own overhead, so at least the median inference's share)
        assert r.energy_source == "battery"
        assert r.energy_mj >= 0.9 * 1.365 * r.median_ms
    # outputs come back from the phone under the model's output name (after a ReLU)
    assert set(results[0].outputs) == {"z"} and results[0].outputs["z"].shape == (1, 8, 16, 16)
    assert (results[0].outputs["z"] >= 0).all() and results[0].outputs["z"].max() > 0

    calls = phone.adb_calls()
    runner = [c for c in calls if c[:3] == ["-s", SERIAL, "shell"] and "runner.py" in c[3]]
    assert len(runner) == 1 and f"taskset {1 << core:x} " in runner[0][3]  # pinned to that core
    assert "/data/local/tmp/edgeprune" in runner[0][3]
    # the work folder is cleaned once everything is pulled; runtime and models stay for next time
    work = phone.root / "data/local/tmp/edgeprune"
    assert not list((work / "jobs").iterdir())
    assert (work / "runtime/runner.py").exists() and len(list((work / "models").glob("*.onnx"))) == 3
    assert device.state()["thermal_mc"] == [41000, 38500]


def test_a_second_session_pushes_neither_runtime_nor_models_again(phone, tmp_path):
    tasks = tasks_for(tmp_path, (8,))
    AdbDevice(SERIAL).measure(tasks)
    before = len(phone.adb_calls())
    AdbDevice(SERIAL).measure(tasks)
    pushes = [c for c in phone.adb_calls()[before:] if c[2] == "push"]
    assert [Path(c[4]).name for c in pushes] == ["job.json"]


def test_going_offline_midway_is_a_device_error_and_the_rest_resumes_without_remeasuring(phone, tmp_path):
    # long enough per task that the results are pulled while the runner still works
    tasks = [BenchTask(id=f"conv|{c}", model=conv_model(tmp_path, c), warmup=1, repeats=3, min_seconds=0.4)
             for c in (8, 16, 24, 32, 40, 48)]
    phone.go_offline_after(2)
    kept = []
    with pytest.raises(DeviceError, match=f"adb:{SERIAL}: .*device offline"):
        AdbDevice(SERIAL).measure(tasks, on_result=kept.append)
    assert phone.offline
    assert all(r.ok for r in kept) and len(kept) < len(tasks)

    phone.reconnect()
    done = {r.id for r in kept}
    rest = [t for t in tasks if t.id not in done]
    resumed = AdbDevice(SERIAL).measure(rest)
    assert sorted(r.id for r in resumed) == sorted(t.id for t in rest) and all(r.ok for r in resumed)
    # every task measured on the phone exactly once, across both sessions: what the runner
    # finished after the link dropped was picked up from the phone, not measured again
    counts = phone.measured()
    assert len(counts) == len(tasks) and set(counts.values()) == {1}


def test_a_link_dropped_when_starting_the_runner_is_retried(phone, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_ADB_DROP_ONCE", "runner.py job.json")  # the runner's start only
    results = AdbDevice(SERIAL).measure(tasks_for(tmp_path, (8, 16)))
    assert all(r.ok for r in results)
    starts = [c for c in phone.adb_calls() if c[2] == "shell" and "runner.py" in c[3]]
    assert len(starts) == 2
    assert set(phone.measured().values()) == {1}


def test_a_serial_with_shell_metacharacters_is_passed_verbatim(tmp_path, monkeypatch):
    serial = "emu'5554; touch PWNED; $(touch PWNED2) `touch PWNED3`"
    phone = Phone(tmp_path / "phone", monkeypatch, serials=(serial,))
    monkeypatch.chdir(tmp_path)
    spec = parse_device(f"adb:{serial}")
    assert spec.serial == serial
    (r,) = AdbDevice(spec).measure(tasks_for(tmp_path, (8,)))
    assert r.ok
    assert {tuple(c[:2]) for c in phone.adb_calls()} == {("-s", serial)}
    assert not list(tmp_path.rglob("PWNED*"))

    # a serial that is not attached: the one-line error names it as given
    with pytest.raises(DeviceError) as err:
        AdbDevice("other; touch PWNED4").measure(tasks_for(tmp_path, (8,)))
    assert "adb:other; touch PWNED4" in str(err.value) and "not found" in str(err.value)
    assert not list(tmp_path.rglob("PWNED*"))


def test_a_phone_without_python_says_how_to_give_it_one(phone, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPRUNE_DEVICE_PYTHON", "/data/local/tmp/no-such-bundle/python3")
    with pytest.raises(DeviceError, match="no Python on the device.*EDGEPRUNE_DEVICE_PYTHON"):
        AdbDevice(SERIAL).measure(tasks_for(tmp_path, (8,)))


def test_no_adb_installed_is_a_device_error(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPRUNE_ADB", str(tmp_path / "no-adb-here"))
    with pytest.raises(DeviceError, match="not installed"):
        AdbDevice(SERIAL).measure(tasks_for(tmp_path, (8,)))


@pytest.mark.parametrize("stderr, link", [
    (b"error: device offline\n", True),
    (b"adb: error: failed to get feature set: device offline\n", True),
    (b"error: device 'abc' not found\n", True),
    (b"error: no devices/emulators found\n", True),
    (b"/system/bin/sh: python3: not found\n", False),   # the phone's shell, not adb
    (b"Traceback ...\nValueError: bad model\n", False),
])
def test_only_adbs_own_errors_count_as_a_lost_link(stderr, link):
    assert _link_failure(1, stderr) is link
