"""A device pool behind a real TVM RPC tracker and server on loopback: LUT entries measured
through the tracker (a device requested by key, a library uploaded, time_evaluator)."""

from __future__ import annotations

import json

import pytest

from edgeprune.cli import main
from edgeprune.devices.base import BenchTask
from edgeprune.devices.open import open_device
from edgeprune.errors import DeviceError, UsageError
from edgeprune.lut.table import load_lut
from tests.devices.rpc_pool import RpcPool
from tests.devices.sshd_server import free_port
from tests.devices.micro import conv_model, micro_onnx

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    with RpcPool(tmp_path_factory.mktemp("rpc")) as p:
        yield p


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("EDGEPRUNE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("EDGEPRUNE_RETRY_DELAY", "0.05")


def test_tasks_run_on_a_device_requested_from_the_tracker(pool, tmp_path):
    device = open_device(pool.spec)
    tasks = [BenchTask(id=f"conv|8x{c}", model=conv_model(tmp_path, c), backend="tvm", warmup=1, repeats=5,
                       min_seconds=0.01) for c in (8, 16)]
    tasks[0].save_outputs = True
    seen = []
    results = device.measure(tasks, on_result=seen.append)
    assert [r.id for r in seen] == ["conv|8x8", "conv|8x16"] and results == seen
    for r in results:
        assert r.ok, r.error
        assert r.median_ms > 0 and r.p90_ms >= r.median_ms and r.count >= 5
    out = results[0].outputs["z"]
    assert out.shape == (1, 8, 16, 16) and (out >= 0).all() and out.max() > 0


def test_profile_measures_lut_entries_through_the_tracker(pool, tmp_path, capsys):
    model, lut = micro_onnx(tmp_path), tmp_path / "lut.json"
    profile = pool.profile(tmp_path / "pool.toml")
    assert main(["profile", "--device", str(profile), "--backend", "tvm", "--model", str(model), "-o", str(lut)]) == 0
    table = load_lut(lut)
    assert table.header["backend"] == "tvm" and table.entries
    assert all(e.median_ms > 0 for e in table.entries.values())


def test_devices_lists_the_pool(pool, monkeypatch, capsys):
    monkeypatch.setenv("EDGEPRUNE_TRACKER", f"127.0.0.1:{pool.port}")
    pool.wait_free()   # the previous test's session ends before the server registers as idle
    assert main(["devices", "--json"]) == 0
    (tracker,) = [t for t in json.loads(capsys.readouterr().out)["trackers"] if t["address"] == f"127.0.0.1:{pool.port}"]
    assert tracker["keys"][pool.key]["free"] == 1


def test_an_unknown_key_or_an_ort_task_is_refused(pool, tmp_path):
    with pytest.raises(DeviceError, match="no device with key 'nosuchkey'.*testpool"):
        open_device(f"rpc:127.0.0.1:{pool.port}/nosuchkey").measure(
            [BenchTask(id="x", model=conv_model(tmp_path, 8), backend="tvm")])
    with pytest.raises(UsageError, match="--backend tvm"):
        open_device(pool.spec).measure([BenchTask(id="x", model=conv_model(tmp_path, 8), backend="ort")])


def test_no_tracker_listening_is_a_device_error(tmp_path):
    spec = f"rpc:127.0.0.1:{free_port()}/testpool"
    with pytest.raises(DeviceError, match=f"{spec}: cannot reach the RPC tracker"):
        open_device(spec).measure([BenchTask(id="x", model=conv_model(tmp_path, 8), backend="tvm")])
