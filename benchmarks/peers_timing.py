"""One timing harness for every model the peer benchmark compares (host, ONNX Runtime).

Every model goes through the same device runner, threads, cores and clock the host LUT was
measured with (the device profile's settings), so edgeprune's, the uniform baseline's and
Torch-Pruning's models are timed alike. `side_by_side` interleaves: each pass times every
model once, the order reversed on every other pass, and the per-model median over the
passes is reported, so that a burst of load from the other tenants of a shared machine
falls on all models alike instead of on whichever ran during it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from edgeprune.devices.base import BenchTask
from edgeprune.devices.open import open_device
from edgeprune.errors import DeviceError
from edgeprune.frontend.load import save_model
from edgeprune.lut.session import profile_settings


class Timer:
    """Median latency (ms) of loaded models on `device` with the LUT's runner settings."""

    def __init__(self, device: str = "host", backend: str = "ort", repeats: int = 30, min_seconds: float = 0.5):
        self.spec, self.backend = device, backend
        self.repeats, self.min_seconds = repeats, min_seconds

    def __enter__(self) -> "Timer":
        self.device = open_device(self.spec)
        self.settings = profile_settings(self.device, self.backend)
        self._tmp = tempfile.TemporaryDirectory(prefix="edgeprune-peers-")
        self._n = 0
        return self

    def __exit__(self, *exc) -> None:
        self._tmp.cleanup()
        self.device.close()

    def describe(self) -> str:
        s = self.settings
        return f"{self.spec} {self.backend}, {s.threads} thread(s), {s.clock} clock, cores {s.cores}"

    def _task(self, model) -> BenchTask:
        self._n += 1
        path = Path(self._tmp.name) / f"m{self._n}.onnx"
        save_model(model.proto, path)
        s = self.settings
        return BenchTask(id=f"m{self._n}", model=path, backend=self.backend, threads=s.threads, cores=s.cores,
                         warmup=5, repeats=self.repeats, min_seconds=self.min_seconds, options=s.options,
                         clock=s.clock)

    def _run(self, tasks: list[BenchTask], names: dict[str, str]) -> dict[str, float]:
        out = {}
        for r in self.device.measure(tasks):
            if not r.ok:
                raise DeviceError(f"{self.spec}: timing {names[r.id]} failed: {r.error}")
            out[names[r.id]] = float(r.median_ms)
        return out

    def __call__(self, model) -> float:
        task = self._task(model)
        return self._run([task], {task.id: "model"})["model"]

    def beside(self, model, dense, dense_ms: float) -> float:
        """`model`'s latency as its ratio to `dense` timed in the same call, times `dense_ms`:
        a fit's single timings drift with the machine (1.4x between a fit and the final
        batch was seen on this host), a ratio taken in one call moves far less."""
        t = self.side_by_side({"dense": dense, "model": model}, passes=1)
        return dense_ms * t["model"] / t["dense"]

    def side_by_side(self, models: dict, passes: int = 3) -> dict[str, float]:
        """Per-model median over `passes` interleaved passes (order reversed every other pass)."""
        tasks = {name: self._task(m) for name, m in models.items()}
        names = {t.id: name for name, t in tasks.items()}
        seen: dict[str, list[float]] = {name: [] for name in models}
        order = list(tasks.values())
        for k in range(passes):
            batch = order if k % 2 == 0 else order[::-1]
            for name, ms in self._run(batch, names).items():
                seen[name].append(ms)
        return {name: float(np.median(v)) for name, v in seen.items()}


def _next_keep(points: list[tuple[float, float]], target_ms: float) -> float:
    above = [p for p in points if p[1] > target_ms]
    below = [p for p in points if p[1] <= target_ms]
    if above and below:
        (k1, m1), (k0, m0) = min(above, key=lambda p: p[0]), max(below, key=lambda p: p[0])
        return k0 + (k1 - k0) * (target_ms - m0) / (m1 - m0) if m1 != m0 else 0.5 * (k0 + k1)
    kn, mn = min(points, key=lambda p: abs(p[1] - target_ms))
    return kn * (target_ms / mn) ** 0.5


def fit_keep(measure, target_ms: float, dense_ms: float, cache: dict | None = None, rounds: int = 5,
             tol: float = 0.02, lo: float = 0.05, hi: float = 0.999):
    """Fit a keep fraction k in [lo, hi] so that `measure(k) -> (candidate, ms)` lands on
    `target_ms`, from measured latencies only (no model of the runtime).

    The next k interpolates between the nearest measured points either side of the target
    (a secant on the measured curve), or, while the target is not bracketed, assumes
    latency scales with k² from the nearest point (channels leave both sides of most
    layers). `cache` (k -> (candidate, ms)) carries measurements across budgets of one
    method, so later budgets start bracketed. Returns (candidate, ms, k, tries): the
    candidate measured closest to the target from below (within `tol` above counts as on
    target) — the rule edgeprune's own closed loop (`plan.calibrate.fit_measured`) uses —
    else the fastest one tried.
    """
    cache = {} if cache is None else cache
    tries = 0
    for _ in range(rounds):
        points = [(1.0, dense_ms)] + [(k, ms) for k, (_, ms) in cache.items()]
        if any(abs(ms / target_ms - 1) <= tol for _, ms in points[1:]):
            break
        k = round(min(hi, max(lo, _next_keep(points, target_ms))), 4)
        if any(abs(k - p[0]) < 2e-3 for p in points):
            break  # the curve is flat here (a channel-step staircase): another try repeats one
        cache[k] = measure(k)
        tries += 1
    if not cache:
        cache[round(lo, 4)] = measure(lo)
    near = [(k, c, ms) for k, (c, ms) in cache.items()]
    under = [t for t in near if t[2] <= target_ms * (1 + tol)]
    k, cand, ms = max(under, key=lambda t: t[2]) if under else min(near, key=lambda t: t[2])
    return cand, ms, k, tries
