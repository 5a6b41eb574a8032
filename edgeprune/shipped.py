"""Timing models the way they ship: built by the target's backend into an artifact, run by the
device's runner under the artifact's own runtime configuration (backends/runtime.py).

`compile` uses it for the dense reference and for every candidate plan of its closed loop, so
the figures it prints about an artifact are figures of that artifact, not of a LUT.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from .errors import DeviceError, UsageError

PASSES = 2          # each model timed in this many interleaved passes; the fastest counts
REPEATS = 30
MIN_SECONDS = 0.5


@dataclass
class ShippedTimer:
    """Median latency of whole models built and run as the artifact will be.

    `prepare(model) -> model` turns a candidate (pruned fp32) into what ships (e.g. int8 QDQ)
    before the backend builds it; weights do not change latency, so candidates are timed
    before recovery."""

    spec: Any                     # devices.profile.DeviceSpec
    backend: str                  # "ort" | "tvm"
    target: Any                   # backends.base.TargetSpec
    prepare: Callable[[Any], Any] | None = None
    backend_options: Mapping[str, Any] | None = None

    def __enter__(self) -> "ShippedTimer":
        from .devices.open import open_device
        from .lut.session import profile_settings

        self._tmp = tempfile.TemporaryDirectory(prefix="edgeprune-shipped-")
        self.device = open_device(self.spec)
        try:
            self.settings = profile_settings(self.device, self.backend)
        except BaseException:
            self.device.close()
            self._tmp.cleanup()
            raise
        self._n = 0
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.device.close()
        finally:
            self._tmp.cleanup()

    def build(self, model, prepared: bool = False):
        """The artifact `model` ships as (prepared first unless `prepared`)."""
        self._n += 1
        shipped = model if prepared or self.prepare is None else self.prepare(model)
        outdir = Path(self._tmp.name) / f"a{self._n}"
        if self.backend == "ort":
            from .backends.ort import OrtBackend

            art = OrtBackend().compile(shipped.proto, self.target, outdir, {"check": False})
        else:
            from .backends.tvm import TvmBackend

            options = {"check": False, **dict(self.backend_options or {})}
            art = TvmBackend().compile(shipped.proto, self.target, outdir, options)
        check_runs_as_measured(art, self.settings)
        return art

    def time(self, models: Mapping[str, Any], prepared: Mapping[str, bool] | None = None) -> dict[str, float]:
        """Median ms of each model, built as it ships and timed in one device session with the
        models interleaved (a load spike then slows all of them, not one)."""
        prepared = prepared or {}
        arts = {name: self.build(m, prepared.get(name, False)) for name, m in models.items()}
        return self.time_artifacts(arts)

    def time_artifacts(self, arts: Mapping[str, Any]) -> dict[str, float]:
        from .devices.base import BenchTask

        s = self.settings
        tasks = []
        for k in range(PASSES):
            for name, art in arts.items():
                tasks.append(BenchTask(id=f"{name}|{k}", model=Path(art.root) / art.run["model"],
                                       backend=art.run["backend"], threads=s.threads, cores=s.cores,
                                       warmup=s.warmup + 2, repeats=max(s.repeats, REPEATS),
                                       min_seconds=max(s.min_seconds, MIN_SECONDS),
                                       options=dict(art.run.get("options", {})), clock=s.clock))
        best: dict[str, float] = {}
        for r in self.device.measure(tasks):
            name = r.id.rsplit("|", 1)[0]
            if not r.ok:
                raise DeviceError(f"{self.spec.raw}: timing {name} failed: {r.error}")
            best[name] = min(best.get(name, math.inf), float(r.median_ms))
        return best


def check_runs_as_measured(artifact, settings) -> None:
    """An artifact is never timed under a configuration its LUT was not measured in."""
    if artifact.backend != "ort":
        return
    ran = dict(artifact.run.get("options", {}))
    if ran != settings.options:
        raise UsageError(f"the {artifact.backend} artifact runs with {ran}, but this device's LUT and dense "
                         f"reference are timed with {settings.options}: rebuild it with this edgeprune")


def measurable(spec) -> str | None:
    """None when `spec` can be timed now; otherwise why not (a profile with no address)."""
    if spec.kind != "local" and spec.serial is None and spec.host is None:
        from .devices.profile import address_example

        return (f"{spec.raw} has no address (reached over {spec.kind}); give --device "
                f"{address_example(spec.kind)} to measure on the device")
    return None
