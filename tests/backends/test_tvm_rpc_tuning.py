"""TVM tuned on the device: MetaSchedule's candidates are built and linked on this host for
aarch64 and timed on an emulated aarch64 board that joined a loopback TVM RPC tracker
(runtimes/emulation/rpc_board.sh); the records land in the target's database, which the next
plan of the same network reuses. Emulated timings prove the mechanics, not speed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgeprune.backends.base import TargetSpec
from edgeprune.backends.emulation import emulation_available, ensure_host_tools
from edgeprune.backends.tvm import TvmBackend
from edgeprune.backends.verify import reference_outputs
from edgeprune.devices.base import BenchTask
from edgeprune.devices.open import open_device
from edgeprune.devices.profile import load_profile_file
from tests.devices.micro import conv_model
from tests.devices.rpc_pool import RpcPool

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(emulation_available() is not None, reason=str(emulation_available()))]
TRIALS = 2


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    ensure_host_tools()
    folder = tmp_path_factory.mktemp("board")
    with RpcPool(folder, key="emulated-aarch64", emulated=True) as pool:
        profile = pool.profile(folder / "board.toml", arch="aarch64",
                               target='{ kind = "llvm", mtriple = "aarch64-linux-gnu", mattr = ["+neon"] }')
        yield pool, load_profile_file(profile), folder


def compile_tuned(board, model: Path, out: Path):
    pool, profile, folder = board
    options = {"tuning_trials": TRIALS, "tuning_trials_per_task": TRIALS, "tuning_strategy": "replay-trace",
               "tuning_rpc": pool.spec.removeprefix("rpc:"), "tuning_cache": folder / "tuning", "check": False}
    pool.wait_free(120)
    return TvmBackend().compile(onnx.load(str(model)), TargetSpec.from_profile(profile), out, options)


def test_candidates_are_timed_on_the_board_and_the_tuned_library_runs_there(board, tmp_path):
    pool, profile, folder = board
    model = conv_model(tmp_path, 16, c_in=16)
    art = compile_tuned(board, model, tmp_path / "art")
    tuning = art.notes["tuning"]
    assert tuning["timed_on"] == pool.spec and tuning["tuned"], tuning
    records = Path(tuning["database"]) / "records.json"
    lines = [json.loads(line) for line in records.read_text().splitlines()]
    # each record holds the candidate's run times measured on the board (seconds, positive)
    assert lines and all(float(t) > 0 for rec in lines for t in rec[1][1])

    x = np.random.default_rng(0).standard_normal((1, 16, 16, 16)).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    pool.wait_free(120)
    device = open_device(str(profile.path))
    try:
        (r,) = device.measure([BenchTask(id="tuned", model=art.path("model"), backend="tvm",
                                         inputs=tmp_path / "x.npz", warmup=1, repeats=3, min_seconds=0.0,
                                         save_outputs=True, options=dict(art.run["options"]))])
    finally:
        device.close()     # hands the board back to the pool
    assert r.ok, r.error
    ref = reference_outputs(onnx.load(str(model)), {"x": x})["z"]
    assert np.abs(r.outputs["z"] - ref).max() < 1e-4


def test_the_next_plan_reuses_the_database_and_tunes_only_its_new_workloads(board, tmp_path):
    model = conv_model(tmp_path, 16, c_in=16)
    again = compile_tuned(board, model, tmp_path / "again").notes["tuning"]
    assert again["reused"] == again["tasks"] and again["tuned"] == []
    narrower = compile_tuned(board, conv_model(tmp_path, 8, c_in=16), tmp_path / "narrow").notes["tuning"]
    assert narrower["tuned"] and narrower["reused"] < narrower["tasks"]
