"""What the planner needs from a latency/energy model, and the adapter to the LUT's.

The planner prices one fused layer at a time — `layer_cost(node, c_in, c_out)` — plus a fixed
cost for everything pruning leaves alone. The LUT's `LatencyModel` (edgeprune.lut.predict)
is the real implementation; anything with these methods will do (a test may price by MACs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Protocol


class CostModel(Protocol):
    channel_step: int          # the channel count step latency moves in on this device
    energy_estimated: bool     # True when energy is an analytical estimate, not measured

    def nodes(self) -> Iterable[str]:
        """The layer nodes this model prices (others count as part of the fixed cost)."""

    def layer_cost(self, node: str, c_in: int, c_out: int) -> tuple[float, float]:
        """(ms, mJ) of one fused layer at these channel counts."""

    def fixed_cost(self) -> tuple[float, float]:
        """(ms, mJ) of everything that does not depend on channel counts."""

    def describe(self) -> dict:
        """What to record in the plan: kind, source, device, ..."""


class LutCostModel:
    """The LUT's LatencyModel (or its RooflineModel prior) seen through the CostModel protocol.

    Energy per layer is the LUT's measured value where every entry has one (as
    `LatencyModel.predict` does), otherwise the analytical estimate.
    """

    def __init__(self, latency_model, channel_step: int | None = None, describe: dict | None = None):
        from ..energy_estimate import estimate_mj

        self._lm = latency_model
        self._estimate_mj = estimate_mj
        lut = getattr(latency_model, "lut", None)
        self.channel_step = int(channel_step or (lut.channel_step if lut is not None else 1))
        entries = list(lut.entries.values()) if lut is not None else []
        self._measured_energy = bool(entries) and all(e.energy_mj is not None for e in entries) \
            and getattr(latency_model, "rest_mj", None) is not None
        self.energy_estimated = not self._measured_energy
        self.estimated = bool(getattr(latency_model, "estimated", lut is None))
        self._describe = dict(describe or {})

    def nodes(self) -> Iterable[str]:
        return list(self._lm.layers)

    def layer_cost(self, node: str, c_in: int, c_out: int) -> tuple[float, float]:
        from ..lut.interp import LutMiss

        sig = self._lm.layers[node].signature
        try:
            if self._measured_energy:
                ms, mj = self._lm.table(sig.key)(c_in, c_out)
                if mj is not None:
                    return self._lm.scale * ms, mj
            else:
                ms = self._lm.layer_ms(node, c_in, c_out)
        except LutMiss as miss:
            from ..errors import UsageError

            raise UsageError(f"the LUT has no entry near layer '{node}' at c_in={c_in}, c_out={c_out} "
                             f"({miss.sig}); run `edgeprune profile` for this model") from None
        return ms, self._estimate_mj(sig.macs(c_in, c_out), sig.bytes_moved(c_in, c_out), sig.dtype)

    def fixed_cost(self) -> tuple[float, float]:
        rest_mj = (getattr(self._lm, "rest_mj", None) or 0.0) if self._measured_energy else 0.0
        return (self._lm.rest_ms or 0.0), rest_mj

    def describe(self) -> dict:
        lut = getattr(self._lm, "lut", None)
        d = {"kind": "lut" if lut is not None else "roofline", "channel_step": self.channel_step,
             "estimated": self.estimated, "energy_estimated": self.energy_estimated,
             "rest_ms": self._lm.rest_ms}
        if lut is not None:
            d["header"] = {k: v for k, v in lut.header.items() if k != "channel_step_sweep"}
            d["entries"] = len(lut.entries)
            path = getattr(lut, "path", None)
            if path is not None:
                d["file"] = Path(path).name
        else:
            d["roofline"] = dict(getattr(self._lm, "roofline", {}))
        d.update(self._describe)
        return d
