"""Whole-model latency and energy from a LUT: the fused layers' entries plus the measured
cost of everything else.

    latency(channels) = scale * Σ LUT(fused layer at its channels) + rest

`rest` and `scale` are measured once per model on the device (calibrate.py: the dense model
and a few uniformly pruned variants timed whole). They are stored in the LUT under the model's
*structure key* — a hash of its ops and attributes without channel counts — so a pruned
model finds the terms of the dense model it came from.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from ..energy_estimate import ESTIMATE_SOURCE, estimate_mj
from ..errors import UsageError
from ..frontend.shapes import declared_dims
from .interp import GridInterpolator, LutMiss
from .layers import Layer, Signature, model_layers
from .table import Lut

# attributes that change with channel pruning and so stay out of the structure key
_CHANNEL_ATTRS = {"group"}


def structure_key(model) -> str:
    proto = getattr(model, "proto", model)
    h = hashlib.sha256()
    for n in proto.graph.node:
        h.update(n.op_type.encode())
        for a in sorted(n.attribute, key=lambda a: a.name):
            if a.name not in _CHANNEL_ATTRS and a.type != a.TENSOR:
                h.update(a.SerializeToString())
    for i in proto.graph.input:
        dims = declared_dims(i) or ()
        h.update(",".join("0" if d is None else str(d) for d in dims).encode())   # 0: dynamic
    return h.hexdigest()[:16]


@dataclass
class Prediction:
    latency_ms: float
    energy_mj: float
    energy_source: str           # a sensor kind ("rapl", ...) or ESTIMATE_SOURCE
    estimated: bool              # True when any part is a roofline/analytical estimate
    layers_ms: dict[str, float] = field(default_factory=dict)
    rest_ms: float = 0.0

    def to_json(self) -> dict:
        return {"latency_ms": self.latency_ms, "energy_mj": self.energy_mj,
                "energy_source": self.energy_source, "estimated": self.estimated,
                "rest_ms": self.rest_ms, "layers_ms": self.layers_ms}


class LatencyModel:
    """Predicts a model's latency for any channel configuration of its fused layers.

    Built once per (LUT, model); `predict_ms` is a few dict look-ups per layer (interpolators
    and results are cached), so a knapsack may call it millions of times.
    """

    def __init__(self, lut: Lut, layers: list[Layer], rest_ms: float | None, rest_mj: float | None = None,
                 scale: float = 1.0):
        self.lut = lut
        self.scale = scale
        self.layers = {l.node: l for l in layers}
        self.rest_ms = rest_ms
        self.rest_mj = rest_mj
        self.estimated = bool(lut.header.get("estimated"))
        self._tables: dict[str, GridInterpolator] = {}
        self._by_sig: dict[str, dict] = {}
        self._energy_source = next((e.energy_source for e in lut.entries.values() if e.energy_source), None)
        for (sig, ci, co), e in lut.entries.items():
            self._by_sig.setdefault(sig, {})[(ci, co)] = (e.median_ms, e.energy_mj)

    @classmethod
    def for_model(cls, lut: Lut, model) -> "LatencyModel":
        record = lut.models.get(structure_key(model))
        if record is None:
            return cls(lut, model_layers(model), None)
        lm = cls(lut, model_layers(model), record["rest_ms"], record.get("rest_mj"), record.get("scale", 1.0))
        try:
            dense = lm.predict_ms()
        except LutMiss:
            return lm  # the caller measures or refuses the missing entries first
        if not lm.scale > 0 or not dense > 0:
            raise UsageError(f"{lut.path}: models/{structure_key(model)}: the whole-model terms (scale "
                             f"{lm.scale:g}, rest {lm.rest_ms:g} ms) make the dense model's latency "
                             f"{dense:g} ms; the LUT is corrupt, re-run `edgeprune profile`")
        return lm

    # ------------------------------------------------------------ per layer
    def table(self, sig: str) -> GridInterpolator:
        t = self._tables.get(sig)
        if t is None:
            if sig not in self._by_sig:
                raise LutMiss(sig, 0, 0, [])
            depthwise = sig.startswith("dwconv|")
            t = self._tables[sig] = GridInterpolator(sig, self._by_sig[sig], self.lut.channel_step, depthwise)
        return t

    def layer_ms(self, node: str, c_in: int, c_out: int) -> float:
        """One fused layer's cost inside the model at these channel counts: its LUT median
        times the model's scale (raises LutMiss). predict_ms = Σ layer_ms + rest_ms."""
        return self.scale * self.table(self.layers[node].signature.key)(c_in, c_out)[0]

    def dense_channels(self) -> dict[str, tuple[int, int]]:
        return {name: (l.c_in, l.c_out) for name, l in self.layers.items()}

    def _channels(self, name: str, l: Layer, channels) -> tuple[int, int]:
        return channels.get(name, (l.c_in, l.c_out)) if channels else (l.c_in, l.c_out)

    # ------------------------------------------------------------ whole model
    def predict_ms(self, channels: dict[str, tuple[int, int]] | None = None) -> float:
        """Latency in ms; `channels` maps node name -> (c_in, c_out); absent nodes stay dense."""
        total = 0.0
        for name, l in self.layers.items():
            ci, co = self._channels(name, l, channels)
            total += self.table(l.signature.key)(ci, co)[0]
        return self.scale * total + (self.rest_ms or 0.0)

    def predict(self, channels: dict[str, tuple[int, int]] | None = None) -> Prediction:
        layers_ms, measured_mj, estimated_mj, all_measured = {}, 0.0, 0.0, True
        for name, l in self.layers.items():
            ci, co = self._channels(name, l, channels)
            ms, mj = self.table(l.signature.key)(ci, co)
            layers_ms[name] = self.scale * ms
            if mj is None:
                all_measured = False
            else:
                measured_mj += mj
            estimated_mj += _layer_estimate_mj(l.signature, ci, co)
        total = sum(layers_ms.values()) + (self.rest_ms or 0.0)
        if all_measured and self.rest_mj is not None:
            energy, source = measured_mj + self.rest_mj, self._energy_source
        else:
            energy, source = estimated_mj, ESTIMATE_SOURCE
        return Prediction(latency_ms=total, energy_mj=energy, energy_source=source,
                          estimated=bool(self.lut.header.get("estimated")),
                          layers_ms=layers_ms, rest_ms=self.rest_ms or 0.0)

    def missing(self, channels: dict[str, tuple[int, int]] | None = None) -> list[tuple[Signature, int, int]]:
        """The (signature, c_in, c_out) points a prediction for `channels` still needs."""
        need = []
        for name, l in self.layers.items():
            ci, co = self._channels(name, l, channels)
            try:
                self.table(l.signature.key)(ci, co)
            except LutMiss as miss:
                for p in (miss.points or [(ci, co)]):
                    if (l.signature, *p) not in need:
                        need.append((l.signature, *p))
        return need


    def transferred(self, channels: dict[str, tuple[int, int]] | None = None) -> list[tuple[Signature, int, int]]:
        """Where a prediction for `channels` rests on values transferred from another device
        (transfer.py): for each such layer, the one point that answers it once measured."""
        need = []
        for name, l in self.layers.items():
            table = self.table(l.signature.key)
            ci, co = self._channels(name, l, channels)
            if any(self.lut.get(l.signature.key, *p).transferred for p in table.points(ci, co)):
                point = (l.signature, *table.landing(ci, co))
                if point not in need:
                    need.append(point)
        return need


def _layer_estimate_mj(sig: Signature, c_in: int, c_out: int) -> float:
    return estimate_mj(sig.macs(c_in, c_out), sig.bytes_moved(c_in, c_out), sig.dtype)


class RooflineModel:
    """A prior for a device with no measured LUT: each layer takes max(compute at the
    profile's published peak FLOP/s, bytes at its peak bandwidth). Every prediction it makes
    is marked `estimated`; it has no rest term (ops outside the fused layers count zero)."""

    estimated = True

    def __init__(self, roofline: dict, layers: list[Layer]):
        self.roofline = roofline
        self.layers = {l.node: l for l in layers}
        self.rest_ms = 0.0
        self.scale = 1.0
        self._flops = roofline["peak_gflops_fp32"] * 1e9
        # without a published int8 peak, int8 work is priced at the fp32 peak (no invented speed-up)
        self._int8 = roofline.get("peak_gops_int8", roofline["peak_gflops_fp32"]) * 1e9
        self._bw = roofline["mem_bandwidth_gbs"] * 1e9

    @classmethod
    def for_model(cls, roofline: dict, model) -> "RooflineModel":
        return cls(roofline, model_layers(model))

    def dense_channels(self) -> dict[str, tuple[int, int]]:
        return {name: (l.c_in, l.c_out) for name, l in self.layers.items()}

    def layer_ms(self, node: str, c_in: int, c_out: int) -> float:
        sig = self.layers[node].signature
        peak = self._int8 if sig.dtype == "int8" else self._flops
        return 1e3 * max(2 * sig.macs(c_in, c_out) / peak, sig.bytes_moved(c_in, c_out) / self._bw)

    def predict_ms(self, channels: dict[str, tuple[int, int]] | None = None) -> float:
        channels = channels or {}
        return sum(self.layer_ms(n, *channels.get(n, (l.c_in, l.c_out))) for n, l in self.layers.items())

    def predict(self, channels: dict[str, tuple[int, int]] | None = None) -> Prediction:
        channels = channels or {}
        layers_ms, mj = {}, 0.0
        for n, l in self.layers.items():
            ci, co = channels.get(n, (l.c_in, l.c_out))
            layers_ms[n] = self.layer_ms(n, ci, co)
            mj += _layer_estimate_mj(l.signature, ci, co)
        return Prediction(latency_ms=sum(layers_ms.values()), energy_mj=mj, energy_source=ESTIMATE_SOURCE,
                          estimated=True, layers_ms=layers_ms, rest_ms=0.0)

    def missing(self, channels=None) -> list:
        return []
