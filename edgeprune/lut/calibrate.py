"""The whole-model terms of a prediction: measured once per model, on the device.

A fused layer timed alone is not quite the same layer inside its model: alone it pays for
layout conversions (NCHW <-> NCHWc) and session overhead, and keeps its weights hot in cache;
inside the model it does neither. So the prediction is

    latency(channels) = scale * Σ LUT(fused layers at those channels) + rest

with `rest` the cost of what pruning does not change (pooling, reshapes, the input layout
conversion, per-run overhead) and `scale` the in-model / alone ratio of fused-layer time.
Both are fitted from the dense model and one uniformly pruned variant (every prunable group
kept at KEEP, rounded to the channel step), timed whole. Where the model cannot be pruned
(no prunable group, or its graph is beyond the channel analysis), scale is 1 and rest is
measured(dense) − Σ LUT(dense).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import DeviceError
from .layers import Layer

KEEP = 0.5
SCALE_RANGE = (0.5, 2.0)   # outside it, the fit is noise: fall back to the additive rest


def calibrate_model(profiler, model, layers: list[Layer], name: str) -> dict:
    from .predict import LatencyModel

    lut = profiler.writer.lut
    variants = [("dense", getattr(model, "proto", model), None)]
    pruned = _pruned_variant(model, lut.channel_step)
    if pruned is not None:
        variants.append(("pruned", pruned[0], pruned[1]))
        lm = LatencyModel(lut, layers, rest_ms=0.0)
        profiler.ensure(lm.missing(pruned[1]))

    # each variant timed in `passes` interleaved passes; its fastest median counts (see table.py)
    tasks = [profiler.whole_model_task(proto, f"{name}-{tag}") for tag, proto, _ in variants]
    passes = max(1, profiler.settings.passes)
    batch = [replace(t, id=f"{t.id}|{k}") for k in range(passes) for t in tasks]
    by_variant: dict[str, list] = {}
    for r in profiler.device.measure(batch):
        if not r.ok:
            raise DeviceError(f"{profiler.device.spec}: timing the whole model failed: {r.error}")
        by_variant.setdefault(r.id.rsplit("|", 1)[0], []).append(r)
    results = [min(by_variant[t.id], key=lambda r: r.median_ms) for t in tasks]
    lm = LatencyModel(profiler.writer.lut, layers, rest_ms=0.0)
    sums = [lm.predict_ms(channels) for _, _, channels in variants]
    measured = [r.median_ms for r in results]

    scale, rest = 1.0, measured[0] - sums[0]
    if len(variants) == 2 and abs(sums[0] - sums[1]) > 1e-9:
        fit = (measured[0] - measured[1]) / (sums[0] - sums[1])
        if SCALE_RANGE[0] <= fit <= SCALE_RANGE[1]:
            scale, rest = fit, measured[0] - fit * sums[0]
    record = {"name": name, "dense_ms": measured[0], "dense_p90_ms": results[0].p90_ms,
              "layers_ms": sums[0], "scale": scale, "rest_ms": rest,
              "calibration": [{"variant": tag, "keep": None if ch is None else KEEP, "measured_ms": m,
                               "layers_ms": s} for (tag, _, ch), m, s in zip(variants, measured, sums)]}
    dense_mj = [profiler.writer.lut.get(l.signature.key, l.c_in, l.c_out).energy_mj for l in layers]
    if results[0].energy_mj is not None and all(v is not None for v in dense_mj):
        record["rest_mj"] = results[0].energy_mj - sum(dense_mj)
    return record


def _pruned_variant(model, step: int):
    """(proto, channels) of the model with every prunable group kept at KEEP, or None."""
    try:
        from ..graph import analyze
        from ..rewrite import prune
        from ..rewrite.select import round_keep, top_channels
    except ImportError:
        return None
    if not hasattr(model, "proto") or not hasattr(model, "sha256"):
        return None
    try:
        analysis = analyze(model)
        keep, counts = {}, {}
        for g in analysis.prunable():
            k = round_keep(g.channels, KEEP, step)
            if k < g.channels:
                keep[g.id] = top_channels(g, np.zeros(g.channels), k)
                counts[g.id] = len(keep[g.id])
        if not keep:
            return None
        return prune(model, analysis, keep).proto, analysis.layer_channels(counts)
    except Exception:  # the calibration is an improvement; a model beyond analysis keeps scale 1
        return None
