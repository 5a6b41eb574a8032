"""Latency/energy lookup tables: measured per device and backend, per fused-layer signature.

What the planner calls
----------------------
    from edgeprune.lut import latency_model

    lm = latency_model(model, device="host", backend="ort")   # model: frontend.load.Model
    lm.predict_ms(channels)            # float ms; channels: {node name: (c_in, c_out)},
                                       #   absent nodes stay dense; exactly what
                                       #   Analysis.layer_channels(kept_counts) returns
    lm.predict(channels)               # Prediction(latency_ms, energy_mj, energy_source,
                                       #   estimated, layers_ms{node: ms}, rest_ms)
    lm.layer_ms(node, c_in, c_out)     # one fused layer's in-model cost in ms: its LUT
                                       #   median times lm.scale, so that
                                       #   predict_ms(ch) == Σ layer_ms + lm.rest_ms
    lm.rest_ms, lm.scale               # the whole-model terms (rest 0, scale 1 for a roofline)
    lm.table(sig_key)(c_in, c_out)     # raw (ms, mJ or None) of a signature, unscaled
    lm.dense_channels()                # {node: (c_in, c_out)} of the dense model
    lm.missing(channels)               # [(Signature, c_in, c_out)] the LUT cannot answer
    lm.lut.channel_step                # the device's channel step: plan in multiples of it

`latency_model` returns a `LatencyModel` (measured LUT) or, for a device with no measured
LUT but a roofline prior in its profile, a `RooflineModel` with the same methods whose
`estimated` is True (say so wherever it is shown). On the local host, entries the model
needs but the LUT lacks are measured first (saved into the LUT); for other devices a missing
LUT or entry is a UsageError telling the user to run `edgeprune profile`.

Speed: interpolators are built once per signature and every (c_in, c_out) answer is cached,
so `predict_ms` is one dict look-up per layer after the first call. Queries off the LUT's
range raise `LutMiss` (a LookupError); counts that are not multiples of the channel step
cost what the next multiple costs (the staircase), unless measured exactly.

The prediction is `scale * Σ layers + rest` (see predict.py and calibrate.py): the rest
and scale are measured once per model, so `layers_ms` values already include the scale.

Modules
-------
layers.py      fused layers and their Signature, read from any ONNX graph
microbench.py  the micro-model of one fused layer at a (c_in, c_out)
table.py       the LUT file: versioned JSON schema, merge of runs, locked atomic writer
interp.py      staircase-aware bilinear interpolation of one signature's grid
profiler.py    what to measure (coarse grid, adaptive refinement), measured through a Device
               (each entry timed until its median is known to ±precision; runtimes/runner.py)
reference.py   the reference layer timed beside each task, and the nominal speed entries keep
calibrate.py   the whole-model scale and rest terms
predict.py     LatencyModel, RooflineModel, structure_key
transfer.py    a new device's LUT from another device's: anchors measured, the rest scaled
refine.py      transferred entries measured where plans land
session.py     opening a device's LUT (path, header, measured channel step, settings)
paths.py       default LUT locations (user cache, seeded from LUTs shipped in profiles/luts/)
api.py         latency_model()
"""

from .api import latency_model, measure_model_entries
from .interp import LutMiss
from .layers import Layer, Signature, model_layers
from .predict import LatencyModel, Prediction, RooflineModel, structure_key
from .table import Lut, load_lut

__all__ = ["latency_model", "measure_model_entries", "LutMiss", "Layer", "Signature", "model_layers",
           "LatencyModel", "Prediction", "RooflineModel", "structure_key", "Lut", "load_lut"]
