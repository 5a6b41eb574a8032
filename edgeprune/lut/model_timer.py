"""Whole-model latency on a device, timed the way the LUT was measured (same runner,
threads, cores, clock), with the device kept open across calls."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..devices.base import BenchTask
from ..errors import DeviceError
from ..frontend.load import save_model


class DeviceTimer:
    """Median latency of whole models on the device, with the LUT's runner settings."""

    def __init__(self, spec, backend):
        self.spec, self.backend = spec, backend

    def __enter__(self):
        from ..devices.open import open_device
        from ..lut.session import profile_settings

        self.device = open_device(self.spec)
        self.settings = profile_settings(self.device, self.backend)
        self.tmp = tempfile.TemporaryDirectory(prefix="edgeprune-plan-")
        self.n = 0
        return self

    def __call__(self, model) -> float:
        return self.many({"model": model})["model"]

    def many(self, models: dict) -> dict[str, float]:
        """Median ms of each model, timed one after another in one device session."""
        tasks, ids = [], {}
        s = self.settings
        for name, model in models.items():
            self.n += 1
            path = Path(self.tmp.name) / f"model{self.n}.onnx"
            save_model(model.proto, path)
            ids[f"t{self.n}"] = name
            tasks.append(BenchTask(id=f"t{self.n}", model=path, backend=self.backend, threads=s.threads,
                                   cores=s.cores, warmup=5, repeats=30, min_seconds=1.0,
                                   options=s.options, clock=s.clock))
        out = {}
        for r in self.device.measure(tasks):
            if not r.ok:
                raise DeviceError(f"{self.spec.raw}: timing {ids[r.id]} failed: {r.error}")
            out[ids[r.id]] = float(r.median_ms)
        return out

    def __exit__(self, *exc):
        self.tmp.cleanup()
        self.device.close()
