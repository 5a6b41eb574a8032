"""BUDGET strings: `12ms`, `0.5x` (of the dense model's latency on the device), `30mJ`,
combined with commas (`12ms,30mJ`) or given several times."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable

from ..errors import UsageError

_TERM = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|x|mj)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Budget:
    latency_ms: float | None = None   # absolute latency limit
    latency_x: float | None = None    # fraction of the dense model's predicted latency
    energy_mj: float | None = None    # energy per inference

    @property
    def text(self) -> str:
        parts = []
        if self.latency_ms is not None:
            parts.append(f"{self.latency_ms:g}ms")
        if self.latency_x is not None:
            parts.append(f"{self.latency_x:g}x")
        if self.energy_mj is not None:
            parts.append(f"{self.energy_mj:g}mJ")
        return ",".join(parts)

    def limits(self, dense_ms: float) -> tuple[float | None, float | None]:
        """(latency limit in ms, energy limit in mJ); None where unconstrained. An absolute
        and a relative latency budget together: the tighter one holds."""
        lat = [v for v in (self.latency_ms,
                           None if self.latency_x is None else self.latency_x * dense_ms) if v is not None]
        return (min(lat) if lat else None), self.energy_mj

    def to_json(self) -> dict:
        return {"text": self.text, "latency_ms": self.latency_ms, "latency_x": self.latency_x,
                "energy_mj": self.energy_mj}


def parse_budget(specs: str | Iterable[str], flag: str = "--budget") -> Budget:
    """Parse one or several budget strings; each may hold comma-separated terms."""
    if isinstance(specs, str):
        specs = [specs]
    terms = [t for s in specs for t in str(s).split(",")]
    if not terms or all(not t.strip() for t in terms):
        raise UsageError(f"{flag}: empty budget (expected e.g. 12ms, 0.5x or 30mJ)")
    seen: dict[str, float] = {}
    for term in terms:
        m = _TERM.match(term)
        if not m:
            raise UsageError(f"{flag} '{term.strip()}': expected a positive number with a unit: "
                             f"12ms, 0.5x (of dense latency) or 30mJ")
        value, unit = float(m.group(1)), m.group(2).lower()
        if not math.isfinite(value) or value <= 0:
            raise UsageError(f"{flag} '{term.strip()}': must be greater than zero")
        if unit == "x" and value > 1:
            raise UsageError(f"{flag} '{term.strip()}': a fraction of the dense latency must be "
                             f"at most 1x")
        if unit in seen:
            raise UsageError(f"{flag}: '{unit}' given twice")
        seen[unit] = value
    return Budget(latency_ms=seen.get("ms"), latency_x=seen.get("x"), energy_mj=seen.get("mj"))
