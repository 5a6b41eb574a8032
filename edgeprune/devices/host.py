"""The local machine as a Device: the runner in a subprocess, results streamed as they land.

One runner process measures a whole batch of tasks (importing onnxruntime once); the
results file is tailed while it runs so every finished task reaches `on_result` — and the
caller's LUT — at once, and a run killed midway keeps everything finished before.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import locations
from ..errors import DeviceError
from .base import BenchTask, TaskResult, timing_fields
from .energy import SensorSpec, detect_sensor, sensor_from_profile
from .profile import DeviceProfile, DeviceSpec, load_profile

RUNTIMES_DIR = locations.runtimes_dir()
RUNNER = RUNTIMES_DIR / "runner.py"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_fingerprint() -> str:
    """A file-name-safe key of this CPU: its model and a hash of its ISA flags (two CPUs sold
    under one name can differ in AVX-512/AMX, which changes every latency)."""
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = " ".join(sorted(line.split(":", 1)[1].split()))
                break
    except OSError:
        pass
    slug = re.sub(r"[^a-z0-9]+", "-", cpu_model().lower()).strip("-")[:40] or platform.machine()
    digest = hashlib.sha1(f"{platform.machine()}|{flags}".encode()).hexdigest()[:8]
    return f"{slug}-{digest}"


def _load_runner_module():
    spec = importlib.util.spec_from_file_location("edgeprune_runner", RUNNER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class HostDevice:
    """This machine. `spec` is "host" or a local profile; tasks run pinned as they ask."""

    def __init__(self, spec: DeviceSpec | None = None, python: str = sys.executable,
                 task_timeout: float = 120.0):
        self.spec = spec.raw if spec else "host"
        self.parsed = spec
        self.profile: DeviceProfile = spec.profile if spec and spec.profile else load_profile("host")
        self.python = python
        self.task_timeout = task_timeout
        self.sensor: SensorSpec | None = self._sensor()

    def _sensor(self) -> SensorSpec | None:
        power = self.profile.power or {"kind": "detect"}
        return detect_sensor() if power.get("kind") == "detect" else sensor_from_profile(power)

    def default_cores(self) -> list[int]:
        if self.profile.cores:
            return list(self.profile.cores)
        # the highest-numbered core we may run on: away from core 0's interrupt load
        return [max(os.sched_getaffinity(0))]

    # -------------------------------------------------------------- Device
    def measure(self, tasks: list[BenchTask],
                on_result: Callable[[TaskResult], None] | None = None) -> list[TaskResult]:
        if not tasks:
            return []
        with tempfile.TemporaryDirectory(prefix="edgeprune-host-") as tmp:
            folder = Path(tmp)
            job = {"version": 1, "results": "results.jsonl",
                   "tasks": [self._task_json(t, k) for k, t in enumerate(tasks)]}
            (folder / "job.json").write_text(json.dumps(job))
            return self._run(folder, tasks, on_result)

    def _task_json(self, t: BenchTask, k: int) -> dict:
        d = {"id": t.id, "backend": t.backend, "model": str(Path(t.model).resolve()),
             "inputs": t.inputs if t.inputs == "random" else str(Path(t.inputs).resolve()),
             "threads": t.threads, "cores": t.cores if t.cores is not None else self.default_cores(),
             "warmup": t.warmup, "repeats": t.repeats, "min_seconds": t.min_seconds,
             "options": t.options, "clock": t.clock, **timing_fields(t)}
        if t.reference is not None:
            d["reference"] = str(Path(t.reference).resolve())
        if t.save_outputs:
            d["save_outputs"] = f"out/{k}.npz"
        if self.sensor is not None:
            d["energy"] = self.sensor.to_task()
        return d

    def _run(self, folder: Path, tasks: list[BenchTask], on_result) -> list[TaskResult]:
        results_path = folder / "results.jsonl"
        deadline_per_task = self.task_timeout + max(t.min_seconds for t in tasks)
        with open(folder / "stderr.txt", "w") as err:
            proc = subprocess.Popen([self.python, str(RUNNER), str(folder / "job.json")],
                                    stdout=subprocess.DEVNULL, stderr=err, cwd=folder)
        results: list[TaskResult] = []
        offset, last_progress = 0, time.monotonic()
        try:
            while True:
                finished = proc.poll() is not None
                offset, new = _read_new_lines(results_path, offset)
                for rec in new:
                    result = _task_result(rec, folder)
                    results.append(result)
                    last_progress = time.monotonic()
                    if on_result:
                        on_result(result)
                if finished:
                    break
                if time.monotonic() - last_progress > deadline_per_task:
                    raise DeviceError(f"host: runner made no progress for {deadline_per_task:.0f} s")
                time.sleep(0.02)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if proc.returncode != 0 or len(results) < len(tasks):
            tail = (folder / "stderr.txt").read_text().strip().splitlines()
            raise DeviceError(f"host: runner exited with code {proc.returncode} after "
                              f"{len(results)}/{len(tasks)} tasks: {tail[-1] if tail else 'no message'}")
        return results

    def state(self) -> dict[str, Any]:
        return _load_runner_module().device_state()

    def close(self) -> None:
        pass


def _read_new_lines(path: Path, offset: int) -> tuple[int, list[dict]]:
    if not path.exists():
        return offset, []
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n")
    if end < 0:
        return offset, []
    lines = data[:end].decode().splitlines()
    return offset + end + 1, [json.loads(line) for line in lines if line.strip()]


def _task_result(rec: dict, folder: Path) -> TaskResult:
    if not rec.get("ok"):
        return TaskResult(id=rec["id"], ok=False, error=rec.get("error", "failed"))
    outputs = None
    if rec.get("outputs"):
        with np.load(folder / rec["outputs"]) as data:
            outputs = {k: data[k] for k in data.files}
    return TaskResult(id=rec["id"], ok=True, median_ms=rec["median_ms"], p90_ms=rec["p90_ms"],
                      count=rec["count"], energy_mj=rec.get("energy_mj"),
                      energy_source=rec.get("energy_source"), energy_note=rec.get("energy_note"),
                      outputs=outputs,
                      state=rec.get("state", {}), converged=rec.get("converged"),
                      reference_ms=rec.get("reference_ms"))
