"""The device runner runs a TVM artifact from its job options alone (runtimes/backend_tvm.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from edgeprune.backends.base import TargetSpec
from edgeprune.backends.tvm import TvmBackend
from edgeprune.backends.verify import compare, reference_outputs

RUNNER = Path(__file__).resolve().parents[2] / "runtimes" / "runner.py"


def run_job(job_dir: Path, tasks: list[dict]) -> list[dict]:
    (job_dir / "job.json").write_text(json.dumps({"version": 1, "results": "results.jsonl", "tasks": tasks}))
    proc = subprocess.run([sys.executable, str(RUNNER), str(job_dir / "job.json")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in (job_dir / "results.jsonl").read_text().splitlines()]


def test_runner_times_a_host_tvm_library_and_saves_reference_outputs(tiny_model, tmp_path):
    art = TvmBackend().compile(tiny_model, TargetSpec(), tmp_path / "art")
    job = tmp_path / "job"
    job.mkdir()
    x = np.random.default_rng(5).standard_normal((1, 3, 32, 32)).astype(np.float32)
    np.savez(job / "in.npz", input=x)
    task = {"id": "tiny", "backend": "tvm", "model": str(art.path("model")), "inputs": "in.npz",
            "threads": 1, "warmup": 1, "repeats": 5, "min_seconds": 0, "save_outputs": "out.npz",
            "options": art.run["options"]}

    [rec] = run_job(job, [task])

    assert rec["ok"], rec
    assert rec["count"] >= 5 and 0 < rec["median_ms"] <= rec["p90_ms"]
    with np.load(job / "out.npz") as out:
        assert compare({"logits": out["logits"]}, reference_outputs(tiny_model.proto, {"input": x})).ok


def test_runner_reports_a_tar_library_as_one_failed_task(tiny_model, tmp_path, monkeypatch):
    monkeypatch.delenv("ANDROID_NDK_HOME", raising=False)
    art = TvmBackend().compile(tiny_model, TargetSpec(name="phone", tvm={"kind": "llvm", "mtriple": "aarch64-linux-android"}),
                               tmp_path / "art")
    job = tmp_path / "job"
    job.mkdir()
    [rec] = run_job(job, [{"id": "t", "backend": "tvm", "model": str(art.path("model")),
                           "options": art.run["options"]}])
    assert not rec["ok"] and ".tar of objects" in rec["error"]
