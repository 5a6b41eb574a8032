"""Release gates for CI: limits on what the artifact measured, each with value and verdict.

    --max-latency MS    measured median latency on the target; a prediction never passes it (the
                        gate fails and says the target could not be measured)
    --max-energy MJ     energy per inference: measured where a sensor exists, else the
                        analytical estimate (marked so)
    --min-fidelity F    agreement of the deployed model with the dense model on DATA, 0..1
                        (needs DATA: agreement on random inputs means nothing), judged by
                        what the outputs are (edgeprune.fidelity): box recall at IoU 0.5
                        for YOLO-style detectors, the lower bound of the 95% Wilson interval
                        of top-1 agreement for classifiers and class maps (the source says
                        so), the lowest cosine similarity over the outputs otherwise
    --max-size MB       size of the deployed model file(s), 1 MB = 10^6 bytes
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import GateFailed, UsageError

# name -> (flag, unit, "max" | "min")
GATES = {
    "max_latency": ("--max-latency", "ms", "max"),
    "max_energy": ("--max-energy", "mJ", "max"),
    "min_fidelity": ("--min-fidelity", "", "min"),
    "max_size": ("--max-size", "MB", "max"),
    # not a flag: an int8 compile must run integer convolutions (checked on the runtime's graph)
    "int8_kernels": ("--quantize int8", "float conv(s)", "max"),
}


def check_limits(limits: Mapping[str, float | None]) -> dict[str, float]:
    """The gates asked for, validated before any work starts."""
    out = {}
    for name, value in limits.items():
        if value is None:
            continue
        flag = GATES[name][0]
        if not math.isfinite(value) or value <= 0 and name != "min_fidelity":
            raise UsageError(f"{flag} {value}: must be a positive number")
        if name == "min_fidelity" and not 0 <= value <= 1:
            raise UsageError(f"{flag} {value}: top-1 agreement is a fraction in [0, 1]")
        out[name] = float(value)
    return out


@dataclass(frozen=True)
class Measured:
    """What the gates look at; `*_source` says how each value was obtained."""

    latency_ms: float | None = None
    latency_source: str = ""          # "measured median on host", "predicted (not measurable here)"
    energy_mj: float | None = None
    energy_source: str = ""           # "rapl", "estimated (...)"
    fidelity: float | None = None
    fidelity_source: str = ""         # "top-1 agreement on DATA (N samples)"
    size_mb: float | None = None
    size_source: str = ""             # which files


@dataclass(frozen=True)
class GateResult:
    name: str
    flag: str
    limit: float
    value: float | None
    unit: str
    source: str
    passed: bool

    def to_json(self) -> dict[str, Any]:
        return {"flag": self.flag, "limit": self.limit, "value": self.value, "unit": self.unit,
                "source": self.source, "passed": self.passed}

    def describe(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        value = "not available" if self.value is None else f"{_fmt(self.value)}{unit}"
        verdict = "held" if self.passed else "failed"
        op = "<=" if GATES[self.name][2] == "max" else ">="
        return f"gate {self.flag} {_fmt(self.limit)}{unit} {verdict}: {value} ({self.source}), limit {op} {_fmt(self.limit)}"


def latency_for_gate(measured_ms: float | None, where: str | None, predicted_ms: float | None,
                     estimated: bool, why_not: str | None = None) -> tuple[float | None, str]:
    """(value, source) for --max-latency: a latency measured on the device, never a
    prediction. Without a measurement the gate sees no value (and fails), and the source says
    what the prediction was and why it cannot pass a release gate."""
    if measured_ms is not None:
        return measured_ms, f"measured median on {where}"
    kind = "a roofline estimate" if estimated else "predicted from the LUT"
    pred = f"{predicted_ms:.4g} ms {kind}" if predicted_ms is not None else "no prediction"
    reason = f": {why_not}" if why_not else ""
    return None, f"not measured on the device{reason}; {pred}, and a prediction cannot pass a latency gate"


def evaluate(limits: Mapping[str, float], measured: Measured) -> list[GateResult]:
    results = []
    for name, limit in limits.items():
        flag, unit, kind = GATES[name]
        key = name.split("_", 1)[1]
        value = getattr(measured, {"latency": "latency_ms", "energy": "energy_mj",
                                   "fidelity": "fidelity", "size": "size_mb"}[key])
        source = getattr(measured, f"{key}_source")
        if value is None:
            passed = False  # a gate that cannot be checked must not pass a release
        elif kind == "max":
            passed = value <= limit
        else:
            passed = value >= limit
        results.append(GateResult(name, flag, limit, value, unit, source or "", passed))
    return results


def int8_kernel_gate(float_convs: list[str] | None, runtime: str) -> GateResult:
    """Every convolution of an int8 artifact runs as an integer kernel in `runtime` (None:
    the runtime's graph could not be inspected, which does not pass)."""
    flag, unit, _ = GATES["int8_kernels"]
    if float_convs is None:
        return GateResult("int8_kernels", flag, 0, None, unit, f"{runtime}: the optimised graph was not inspected", False)
    names = ", ".join(float_convs[:5]) + (f" and {len(float_convs) - 5} more" if len(float_convs) > 5 else "")
    source = f"convolutions {runtime} runs in float: {names}" if float_convs else \
        f"every convolution runs as an integer kernel in {runtime}"
    return GateResult("int8_kernels", flag, 0, float(len(float_convs)), unit, source, not float_convs)


def raise_if_failed(results: list[GateResult], where: str) -> None:
    failed = [r for r in results if not r.passed]
    if failed:
        first = failed[0].describe()
        more = f" (and {len(failed) - 1} more gate(s) failed)" if len(failed) > 1 else ""
        raise GateFailed(f"{first}{more}; the artifact is in {where}")


def _fmt(v: float) -> str:
    return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.0f}"
