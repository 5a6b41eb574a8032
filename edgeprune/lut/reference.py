"""The reference model: one fixed fused layer timed beside every task on a shared machine.

On a host shared with other work, the speed of everything moves by up to ±20% for seconds at
a time (the other core's load, the clock frequency that load allows): measured here, a 3x3
conv's median (64 -> 87 channels, 14x14) was 0.28, 0.45 and 0.29 ms in three passes seconds
apart, each pass known to ±2%. A confidence interval over one pass cannot see that; a reference timed just
before and after the task can. The runner does so (`BenchTask.reference`), and a task's median
times `nominal / reference` is its time at the LUT's nominal speed: `reference_ms` in the LUT
header, the median reference time over the first session that measured the LUT. Entries, the
whole-model calibration and the accuracy benchmark's measurements are all at that speed.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from ..devices.base import TaskResult
from .layers import Signature
from .microbench import micro_model_file

# the channel step sweep's layer at its first count: the sweep measures the nominal speed too
REFERENCE_SIG = Signature(kind="conv", kernel=(3, 3), pads=(1, 1, 1, 1), in_hw=(14, 14), act="relu")
REFERENCE_CHANNELS = 64
NOMINAL_TASKS = 8   # reference timings that set a new LUT's nominal speed (when no sweep does)


def reference_model(settings, workdir: Path) -> Path | None:
    """The reference micro-model file, when the device's settings ask for one (ORT only)."""
    if not settings.reference or settings.backend != "ort":
        return None
    return micro_model_file(REFERENCE_SIG, REFERENCE_CHANNELS, REFERENCE_CHANNELS, workdir)


def normalized(r: TaskResult, nominal: float | None) -> tuple[float, float]:
    """(median, p90) of a result at the nominal speed; as measured without a reference."""
    if nominal and r.reference_ms:
        f = nominal / r.reference_ms
        return r.median_ms * f, r.p90_ms * f
    return r.median_ms, r.p90_ms


def nominal_of(results: list[TaskResult]) -> float | None:
    refs = [r.reference_ms for r in results if r.ok and r.reference_ms]
    return statistics.median(refs) if refs else None


def measure_nominal(device, settings, workdir: Path) -> float | None:
    """The nominal speed of a new LUT whose channel step is not swept: the median of a few
    reference timings."""
    ref = reference_model(settings, workdir)
    if ref is None:
        return None
    tasks = [settings.task(f"reference|{k}", ref, settings.options, reference=ref) for k in range(NOMINAL_TASKS)]
    return nominal_of(device.measure(tasks))
