"""A new device's LUT started from another device's: a few anchors measured, the rest scaled.

As LitePred and HELP adapt a latency predictor to a new device from a handful of measured
layers: the anchors are entries of the source LUT chosen to span each op kind's range of
sizes, measured on the new device; the ratio new / old is fitted over them as a log-linear
function of the old time with a per-op-kind offset,

    log(new / old) = a + b * (log old - mean) + c[kind]      (c shrunk towards 0)

because a ratio is not one number: moving from two threads to one, for instance, leaves a
tiny layer's time alone (its cost is per call) and doubles a large one's. Every other entry
of the source is then written into the new LUT scaled by that fit, with its run marked
`transferred`. The whole-model terms of the source's models stay behind: how a runtime runs a
whole model beside its layers alone is what differs most between configurations (measured: a
source at two threads on a loaded 2-core host had a rest term of 34 ms of 51; carried over, its
predictions were 60-600% off, benchmarks/RESULTS.md). They are timed on the new device when a
model is profiled (calibrate.py, against the transferred entries: no entry measured).
The new LUT carries the new device's header and runtime configuration (so it prices only that
device, as a measured one does) and records under `transferred_from` where it came from and
the fit. Transferred values are replaced by measurements where plans land (refine.py).
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UsageError
from .layers import Signature
from .paths import default_lut_path
from .profiler import Profiler, utc_now
from .reference import measure_nominal
from .session import device_spec, lut_header, profile_settings
from .table import Lut, LutWriter, load_lut

DEFAULT_ANCHORS = 16
# pseudo-observations pulling each op kind's own offset towards the shared line: with two or
# three anchors of a kind its offset is mostly the shared fit, with ten mostly its own
KIND_PRIOR = 2.0


def op_kind(sig: Signature) -> str:
    """Entries whose speed moves together between devices: pointwise and spatial convolutions
    run different kernels, depthwise and dense ones too."""
    kind = sig.kind
    if kind == "conv":
        kind = "conv1x1" if tuple(sig.kernel) == (1, 1) else "conv"
    return f"{kind}|{sig.dtype}"


@dataclass
class ScaleFit:
    a: float = 0.0
    b: float = 0.0
    x_mean: float = 0.0
    offsets: dict[str, float] = field(default_factory=dict)
    x_range: tuple[float, float] = (-math.inf, math.inf)   # log old ms the anchors span
    anchors: int = 0
    loo_error: float | None = None   # median |relative error| of each anchor left out of its fit

    def ratio(self, old_ms: float, kind: str | None = None) -> float:
        # the line is not extrapolated: beyond the anchors' sizes the nearest one's ratio holds
        x = min(max(math.log(old_ms), self.x_range[0]), self.x_range[1])
        return math.exp(self.a + self.b * (x - self.x_mean) + self.offsets.get(kind, 0.0))

    def to_json(self) -> dict:
        return {"a": self.a, "b": self.b, "x_mean": self.x_mean, "x_range": list(self.x_range),
                "offsets": dict(sorted(self.offsets.items())), "anchors": self.anchors, "loo_error": self.loo_error}


def fit_scale(pairs: list[tuple[float, float, str]]) -> ScaleFit:
    """The fit over anchors given as (old ms, new ms, op kind)."""
    fit = _solve(pairs)
    if len(pairs) >= 3:
        errors = [abs(_solve(pairs[:i] + pairs[i + 1:]).ratio(old, kind) * old / new - 1)
                  for i, (old, new, kind) in enumerate(pairs)]
        fit.loo_error = float(np.median(errors))
    return fit


def _solve(pairs) -> ScaleFit:
    if not pairs:
        raise UsageError("transfer: no anchor was measured")
    x = np.log([old for old, _, _ in pairs])
    y = np.log([new for _, new, _ in pairs]) - x
    kinds = sorted({k for _, _, k in pairs})
    x_mean = float(x.mean())
    # a slope needs sizes apart: below a factor of 1.5 in time between anchors it is noise
    slope = len(pairs) >= 3 and np.ptp(x) > math.log(1.5)
    cols = [np.ones_like(x)] + ([x - x_mean] if slope else [])
    cols += [np.array([1.0 if k == kind else 0.0 for _, _, k in pairs]) for kind in kinds]
    design = np.stack(cols, axis=1)
    shared = 2 if slope else 1
    prior = np.zeros((len(kinds), design.shape[1]))
    prior[:, shared:] = math.sqrt(KIND_PRIOR) * np.eye(len(kinds))
    coef, *_ = np.linalg.lstsq(np.vstack([design, prior]), np.concatenate([y, np.zeros(len(kinds))]), rcond=None)
    return ScaleFit(a=float(coef[0]), b=float(coef[1]) if slope else 0.0, x_mean=x_mean,
                    offsets={k: float(c) for k, c in zip(kinds, coef[shared:])},
                    x_range=(float(x.min()), float(x.max())), anchors=len(pairs))


def pick_anchors(source: Lut, n: int) -> list[tuple[str, int, int]]:
    """`n` entries of `source` spanning each op kind's range of times: every kind gets at least
    two (its smallest and largest) where `n` allows, the rest go to kinds by their share of
    entries, spread evenly over each kind's entries sorted by time."""
    by_kind: dict[str, list] = {}
    for key, e in sorted(source.entries.items()):
        by_kind.setdefault(op_kind(source.signature(e.sig)), []).append((e.median_ms, key))
    kinds = sorted(by_kind, key=lambda k: -len(by_kind[k]))
    share = {k: 0 for k in kinds}
    left = n
    for k in kinds:
        take = min(2, len(by_kind[k]), left)
        share[k], left = take, left - take
    total = sum(len(v) for v in by_kind.values())
    while left > 0 and any(share[k] < len(by_kind[k]) for k in kinds):
        k = max((k for k in kinds if share[k] < len(by_kind[k])), key=lambda k: len(by_kind[k]) / total - share[k] / n)
        share[k] += 1
        left -= 1
    picked = []
    for k in kinds:
        ranked = [key for _, key in sorted(by_kind[k])]
        m = share[k]
        if m == 1:
            picked.append(ranked[len(ranked) // 2])
        elif m > 1:
            picked += [ranked[round(i * (len(ranked) - 1) / (m - 1))] for i in range(m)]
    return picked


@dataclass
class Transfer:
    path: Path
    source: Path
    fit: ScaleFit
    anchors: int          # anchors measured by this run (others were in the LUT already)
    transferred: int      # entries written as transferred
    seconds: float        # device time: the nominal speed and the anchors


def check_source(source_path, backend: str) -> Lut:
    """The source LUT, refused (UsageError) before any work when it cannot be transferred."""
    source = load_lut(source_path)
    if source.header.get("backend") != backend:
        raise UsageError(f"--transfer-from {source_path}: a LUT for backend '{source.header.get('backend')}', "
                         f"not '{backend}'")
    if not source.entries:
        raise UsageError(f"--transfer-from {source_path}: the LUT holds no entries")
    return source


def transfer_lut(source_path, device, backend: str, output=None, anchors: int = DEFAULT_ANCHORS,
                 progress=None) -> Transfer:
    """Start (or extend) `device`'s LUT at `output` (default: its place in the cache) from the
    LUT at `source_path`. Entries the destination already holds are kept."""
    if anchors < 2:
        raise UsageError(f"--anchors {anchors}: at least 2 (a size and a ratio)")
    source = check_source(source_path, backend)
    settings = profile_settings(device, backend)
    path = Path(output) if output else default_lut_path(device_spec(device), backend)
    if path.exists() and path.resolve() == Path(source_path).resolve():
        raise UsageError(f"--transfer-from {source_path}: is the LUT it would write")
    existing = load_lut(path) if path.exists() else None
    if existing is not None and existing.channel_step != source.channel_step:
        raise UsageError(f"{path}: channel step {existing.channel_step}, the source's is {source.channel_step}; "
                         f"transfer into a new LUT (-o)")
    started = time.monotonic()
    if existing is None:
        # the source's step: the transferred entries lie on its grid (a device of the same kind)
        with tempfile.TemporaryDirectory(prefix="edgeprune-nominal-") as tmp:
            nominal = measure_nominal(device, settings, Path(tmp))
        header = lut_header(device, backend, source.channel_step, None, nominal)
    else:
        header = lut_header(device, backend, existing.channel_step)
    writer = LutWriter(path, header)
    profiler = Profiler(device, writer, settings, progress)
    picked = pick_anchors(source, anchors)
    profiler.ensure([(source.signature(s), ci, co) for s, ci, co in picked], measured=True)
    seconds = time.monotonic() - started
    fit = fit_scale([(source.get(*k).median_ms, writer.lut.get(*k).median_ms, op_kind(source.signature(k[0])))
                     for k in picked])
    written = _write_transferred(writer, source, fit, profiler.run_id)
    writer.set_header("transferred_from", {
        "path": str(Path(source_path).resolve()), "device": source.header.get("device"),
        "fingerprint": source.header.get("fingerprint"), "runtime": source.header.get("runtime"),
        "entries": len(source.entries), "at": utc_now(), "fit": fit.to_json(),
        "anchors": [list(k) for k in picked]})
    writer.flush()
    return Transfer(path, Path(source_path), fit, profiler.measured, written, seconds)


def _write_transferred(writer: LutWriter, source: Lut, fit: ScaleFit, run_id: str) -> int:
    written = 0
    with writer.deferred(5.0):
        for key, e in sorted(source.entries.items()):
            if writer.lut.get(*key) is not None:
                continue
            sig = source.signature(e.sig)
            r = fit.ratio(e.median_ms, op_kind(sig))
            # energy is the source device's own: nothing here says what the new one draws
            writer.add(sig, e.c_in, e.c_out, {"median_ms": e.median_ms * r, "p90_ms": e.p90_ms * r,
                                              "count": e.count, "at": utc_now(), "run": run_id,
                                              "transferred": True})
            written += 1
        for key, grid in source.grids.items():
            if key not in writer.lut.grids:
                writer.set_grid(key, [tuple(p) for p in grid["points"]])
    return written
