"""A CostModel priced by work (MACs and bytes moved per fused layer) with a staircase at the
channel step: small, deterministic, and a real cost model — what a roofline prior is."""

from __future__ import annotations

from edgeprune.energy_estimate import estimate_mj
from edgeprune.lut.layers import model_layers


class MacsCostModel:
    energy_estimated = True

    def __init__(self, model, step: int = 8, ms_per_gmac: float = 20.0, fixed_ms: float = 0.1):
        self.layers = {l.node: l for l in model_layers(model)}
        self.channel_step = step
        self.ms_per_gmac = ms_per_gmac
        self.fixed_ms = fixed_ms

    def _up(self, c: int) -> int:
        return -(-c // self.channel_step) * self.channel_step

    def nodes(self):
        return list(self.layers)

    def layer_cost(self, node, c_in, c_out):
        sig = self.layers[node].signature
        # unaligned channel counts run at the cost of the next multiple of the step
        ci, co = self._up(c_in), self._up(c_out)
        if sig.kind == "dwconv":
            ci = co
        macs = sig.macs(ci, co)
        return macs * 1e-9 * self.ms_per_gmac, estimate_mj(macs, sig.bytes_moved(ci, co))

    def fixed_cost(self):
        return self.fixed_ms, 0.0

    def describe(self):
        return {"kind": "macs", "channel_step": self.channel_step}
