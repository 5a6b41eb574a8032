"""The whole-model terms of a prediction: measured once per model, on the device.

A fused layer timed alone is not quite the same layer inside its model: alone it pays for
layout conversions (NCHW <-> NCHWc) and session overhead, and keeps its weights hot in cache;
inside the model it does neither. So the prediction is

    latency(channels) = scale * Σ LUT(fused layers at those channels) + rest

with `rest` the cost of what pruning does not change (pooling, reshapes, the input layout
conversion, per-run overhead) and `scale` the in-model / alone ratio of fused-layer time.
Both are fitted (least squares) from the dense model and a few uniformly pruned variants
(every prunable group kept at each of KEEPS, rounded to the channel step), timed whole. Where the model cannot be pruned
(no prunable group, or its graph is beyond the channel analysis), scale is 1 and rest is
measured(dense) − Σ LUT(dense).
"""

from __future__ import annotations

import numpy as np

from .layers import Layer

VERSION = 2                # records of an older calibration are measured again
KEEPS = (0.3, 0.5, 0.75)   # the uniformly pruned variants timed beside the dense model
SCALE_RANGE = (0.5, 2.0)   # outside it, the fit is noise: fall back to the additive rest


def calibrate_model(profiler, model, layers: list[Layer], name: str, measure_transferred: bool = False) -> dict:
    from .predict import LatencyModel

    lut = profiler.writer.lut
    variants = [("dense", None, getattr(model, "proto", model), None)]
    for keep in KEEPS:
        pruned = _pruned_variant(model, lut.channel_step, keep)
        if pruned is not None:
            variants.append((f"keep{keep:g}", keep, *pruned))
    lm = LatencyModel(lut, layers, rest_ms=0.0)
    profiler.ensure([p for _, _, _, ch in variants[1:] for p in lm.missing(ch)])
    lm = LatencyModel(profiler.writer.lut, layers, rest_ms=0.0)
    if measure_transferred:
        # fitted against what this device measures: values transferred from another device
        # (transfer.py) are measured where the variants land
        profiler.ensure([p for _, _, _, ch in variants for p in lm.transferred(ch)], measured=True)
        lm = LatencyModel(profiler.writer.lut, layers, rest_ms=0.0)
    transferred = any(lm.transferred(ch) for _, _, _, ch in variants)

    tasks = [profiler.whole_model_task(proto, f"{name}-{tag}") for tag, _, proto, _ in variants]
    timed = profiler.time_whole_models(tasks)
    results = [timed[t.id] for t in tasks]
    sums = np.array([lm.predict_ms(channels) for _, _, _, channels in variants])
    measured = np.array([profiler.normalized(r)[0] for r in results])

    scale, rest = 1.0, float(measured[0] - sums[0])
    if len(variants) >= 2 and np.ptp(sums) > 1e-9:
        # least squares over the dense model and its variants: measured = scale * sums + rest
        fit, intercept = np.polyfit(sums, measured, 1)
        if SCALE_RANGE[0] <= fit <= SCALE_RANGE[1]:
            scale, rest = float(fit), float(intercept)
    record = {"name": name, "calibration_version": VERSION, "dense_ms": float(measured[0]), "dense_p90_ms": profiler.normalized(results[0])[1],
              "layers_ms": float(sums[0]), "scale": scale, "rest_ms": rest,
              "calibration": [{"variant": tag, "keep": keep, "measured_ms": float(m), "layers_ms": float(s)}
                              for (tag, keep, _, _), m, s in zip(variants, measured, sums)]}
    if transferred:
        record["transferred"] = True   # fitted against transferred entries: they price it alike
    if results[0].reference_ms:
        # the figures above are at the LUT's nominal speed (reference.py); as timed, they were
        record["as_timed"] = [{"variant": tag, "median_ms": r.median_ms, "reference_ms": r.reference_ms}
                              for (tag, _, _, _), r in zip(variants, results)]
    dense_mj = [profiler.writer.lut.get(l.signature.key, l.c_in, l.c_out).energy_mj for l in layers]
    if results[0].energy_mj is not None and all(v is not None for v in dense_mj):
        record["rest_mj"] = results[0].energy_mj - sum(dense_mj)
    return record


def _pruned_variant(model, step: int, ratio: float):
    """(proto, channels) of the model with every prunable group kept at `ratio`, or None."""
    try:
        from ..graph import analyze
        from ..rewrite import prune
        from ..graph.keep import round_keep, top_channels
    except ImportError:
        return None
    if not hasattr(model, "proto") or not hasattr(model, "sha256"):
        return None
    try:
        analysis = analyze(model)
        keep, counts = {}, {}
        for g in analysis.prunable():
            k = round_keep(g.channels, ratio, step)
            if k < g.channels:
                keep[g.id] = top_channels(g, np.zeros(g.channels), k)
                counts[g.id] = len(keep[g.id])
        if not keep:
            return None
        return prune(model, analysis, keep).proto, analysis.layer_channels(counts)
    except Exception:  # the calibration is an improvement; a model beyond analysis keeps scale 1
        return None
