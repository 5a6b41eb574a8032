"""What the planner needs from a latency/energy model, and the adapter to the LUT's.

The planner prices one fused layer at a time — `layer_cost(node, c_in, c_out)` — plus a fixed
cost for everything pruning leaves alone. The LUT's `LatencyModel` (edgeprune.lut.predict)
is the real implementation; anything with these methods will do (a test may price by MACs).
"""

from __future__ import annotations

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
    """The LUT's LatencyModel seen through the CostModel protocol.

    Energy per layer is the LUT's measured value where every entry has one (as
    `LatencyModel.predict` does), otherwise the analytical estimate.
    """

    def __init__(self, latency_model, describe: dict | None = None):
        from ..devices.energy import estimate_mj

        self._lm = latency_model
        self._estimate_mj = estimate_mj
        self.channel_step = latency_model.lut.channel_step
        entries = latency_model.lut.entries.values()
        self._measured_energy = bool(entries) and all(e.energy_mj is not None for e in entries) \
            and latency_model.rest_mj is not None
        self.energy_estimated = not self._measured_energy
        self._describe = dict(describe or {})

    def nodes(self) -> Iterable[str]:
        return list(self._lm.layers)

    def layer_cost(self, node: str, c_in: int, c_out: int) -> tuple[float, float]:
        layer = self._lm.layers[node]
        ms, mj = self._lm.table(layer.signature.key)(c_in, c_out)
        if not self._measured_energy or mj is None:
            sig = layer.signature
            mj = self._estimate_mj(sig.macs(c_in, c_out), sig.bytes_moved(c_in, c_out), sig.dtype)
        return ms, mj

    def fixed_cost(self) -> tuple[float, float]:
        rest_mj = (self._lm.rest_mj or 0.0) if self._measured_energy else 0.0
        return (self._lm.rest_ms or 0.0), rest_mj

    def describe(self) -> dict:
        d = {"kind": "lut", "channel_step": self.channel_step,
             "estimated": bool(self._lm.lut.header.get("estimated", False)),
             "energy_estimated": self.energy_estimated, "rest_ms": self._lm.rest_ms}
        d.update(self._describe)
        return d
