"""The local host as a Device: the runner in a subprocess, results streamed, resume by id."""

import json
import subprocess
import sys

import pytest

from edgeprune.devices.base import BenchTask, Device
from edgeprune.devices.host import RUNNER, HostDevice, cpu_fingerprint
from edgeprune.devices.open import open_device
from edgeprune.errors import UsageError
from edgeprune.lut.layers import Signature
from edgeprune.lut.microbench import micro_model_file

SIG = Signature(kind="conv", kernel=(3, 3), pads=(1, 1, 1, 1), in_hw=(8, 8), act="relu")


def tasks(folder, n=3, **kw):
    return [BenchTask(id=f"t{c}", model=micro_model_file(SIG, 16, c, folder), warmup=1, repeats=3,
                      min_seconds=0.01, **kw) for c in range(16, 16 * (n + 1), 16)]


def test_host_is_a_device_that_streams_one_result_per_task(tmp_path):
    dev = open_device("host")
    assert isinstance(dev, Device) and isinstance(dev, HostDevice)
    seen = []
    results = dev.measure(tasks(tmp_path), on_result=seen.append)
    assert [r.id for r in seen] == ["t16", "t32", "t48"] and results == seen
    for r in results:
        assert r.ok and r.count >= 3 and 0 < r.median_ms <= r.p90_ms


def test_cpu_clock_and_saved_outputs(tmp_path):
    (r,) = HostDevice().measure(tasks(tmp_path, 1, clock="cpu", save_outputs=True))
    assert r.ok and r.outputs["y"].shape == (1, 16, 8, 8)


def test_a_failing_task_is_reported_and_the_others_still_run(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    batch = [BenchTask(id="bad", model=bad)] + tasks(tmp_path, 1)
    results = HostDevice().measure(batch)
    assert not results[0].ok and results[0].error and results[1].ok


def test_runner_skips_tasks_already_in_the_results_file(tmp_path):
    model = micro_model_file(SIG, 16, 16, tmp_path)
    job = {"version": 1, "results": "r.jsonl", "tasks": [
        {"id": i, "model": str(model), "warmup": 0, "repeats": 1, "min_seconds": 0} for i in ("a", "b")]}
    (tmp_path / "job.json").write_text(json.dumps(job))
    (tmp_path / "r.jsonl").write_text(json.dumps({"id": "a", "ok": True}) + "\n")
    out = subprocess.run([sys.executable, str(RUNNER), str(tmp_path / "job.json")], capture_output=True,
                         text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"done": 1, "failed": 0}
    ids = [json.loads(line)["id"] for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert ids == ["a", "b"]


def test_runner_imports_nothing_from_edgeprune():
    text = RUNNER.read_text() + (RUNNER.parent / "backend_ort.py").read_text()
    assert "edgeprune" not in text.replace("edgeprune_", "").split('"""', 2)[-1]


def test_cpu_fingerprint_is_file_name_safe():
    fp = cpu_fingerprint()
    assert fp and all(c.isalnum() or c == "-" for c in fp)


def test_remote_profile_without_address_asks_for_one():
    with pytest.raises(UsageError, match="adb:SERIAL"):
        open_device("pixel-7")


def _battery_run(tmp_path, current_ua: str, voltage_uv: str, status: str | None = None,
                 repeats: int = 5, min_seconds: float = 0.0) -> dict:
    """The runner's result record for one task timed with a battery sensor of these readings."""
    bat = tmp_path / "battery"
    bat.mkdir()
    (bat / "current_now").write_text(current_ua + "\n")
    (bat / "voltage_now").write_text(voltage_uv + "\n")
    if status is not None:
        (bat / "status").write_text(status + "\n")
    model = micro_model_file(SIG, 16, 16, tmp_path)
    job = {"version": 1, "results": "r.jsonl", "tasks": [
        {"id": "e", "model": str(model), "warmup": 1, "repeats": repeats, "min_seconds": min_seconds,
         "energy": {"kind": "battery", "path": str(bat)}}]}
    (tmp_path / "job.json").write_text(json.dumps(job))
    subprocess.run([sys.executable, str(RUNNER), str(tmp_path / "job.json")], check=True, capture_output=True)
    return json.loads((tmp_path / "r.jsonl").read_text())


def test_runner_integrates_battery_power_over_the_timed_loop(tmp_path):
    # 0.5 A (the sign differs between phones) x 4.0 V -> 2 W
    rec = _battery_run(tmp_path, "-500000", "4000000", repeats=20, min_seconds=0.3)
    assert rec["energy_source"] == "battery"
    # 2 W over the loop, divided by the runs: 2 W x (loop time / runs) >= 2 W x mean run time
    assert rec["energy_mj"] >= 2.0 * rec["mean_ms"] * 0.9
    assert rec["energy_mj"] <= 2.0 * 0.3 * 3 * 1e3 / rec["count"] + 2.0 * rec["mean_ms"] * 3


@pytest.mark.parametrize("status", ["Charging", "Full", "Not charging"])
def test_a_battery_that_is_not_discharging_measures_no_energy_and_says_why(tmp_path, status):
    rec = _battery_run(tmp_path, "800000", "4200000", status)   # the charger's current flowing in
    assert "energy_mj" not in rec
    assert rec["energy_note"].startswith(f"battery {status.lower()}")


def test_a_discharging_battery_is_measured(tmp_path):
    rec = _battery_run(tmp_path, "500000", "4000000", "Discharging")
    assert rec["energy_source"] == "battery" and rec["energy_mj"] > 0
