"""Whole-model prediction from a LUT: scale * Σ layers + rest, energy measured or estimated."""

import numpy as np
import pytest

from edgeprune.errors import UsageError
from edgeprune.graph import analyze
from edgeprune.lut.layers import model_layers
from edgeprune.lut.predict import LatencyModel, structure_key
from edgeprune.lut.table import Lut
from edgeprune.rewrite import prune
from edgeprune.rewrite.select import top_channels
from tests.lut.tiny import tiny_model

HEADER = {"device": "t", "backend": "ort", "threads": 1, "channel_step": 16}


def lut_for(model, energy: bool, rest_ms=0.5, scale=1.0, rest_mj=0.25):
    """A LUT whose entries cost c_in*c_out/1e4 ms (and as many mJ) at multiples of 16 and the dense counts."""
    lut = Lut(header=dict(HEADER))
    for layer in model_layers(model):
        ins = sorted({layer.c_in} | ({16, 32} if layer.c_in > 16 else set()))
        outs = sorted({layer.c_out} | (set(range(16, layer.c_out + 1, 16)) if layer.c_out > 16 else set()))
        for ci in ins:
            for co in outs:
                if layer.signature.kind == "dwconv" and ci != co:
                    continue
                ms = ci * co / 1e4
                run = {"median_ms": ms, "p90_ms": ms, "count": 1}
                if energy:
                    run.update(energy_mj=ms, energy_source="rapl")
                lut.add(layer.signature, ci, co, run)
    record = {"rest_ms": rest_ms, "scale": scale}
    if energy:
        record["rest_mj"] = rest_mj
    lut.models[structure_key(model)] = record
    return lut


def test_prediction_is_scale_times_layers_plus_rest_and_energy_from_sensor_entries():
    model = tiny_model(32)
    lm = LatencyModel.for_model(lut_for(model, energy=True, scale=0.9), model)
    layers = sum(l.c_in * l.c_out / 1e4 for l in model_layers(model))
    assert lm.predict_ms() == pytest.approx(0.9 * layers + 0.5)
    p = lm.predict()
    assert p.energy_source == "rapl" and not p.estimated
    assert p.energy_mj == pytest.approx(layers + 0.25)


def test_without_sensor_energy_is_estimated_and_says_so():
    model = tiny_model(32)
    p = LatencyModel.for_model(lut_for(model, energy=False), model).predict()
    assert p.energy_source.startswith("estimated") and p.energy_mj > 0


def test_a_pruned_model_finds_the_whole_model_terms_of_its_dense_model():
    model = tiny_model(32)
    analysis = analyze(model)
    keep = {g.id: top_channels(g, np.zeros(g.channels), 16) for g in analysis.prunable() if g.channels > 16}
    assert keep
    pruned = prune(model, analysis, keep)
    assert structure_key(pruned) == structure_key(model)
    lut = lut_for(model, energy=False)
    dense_lm = LatencyModel.for_model(lut, model)
    counts = {gid: len(k) for gid, k in keep.items()}
    via_planner = dense_lm.predict_ms(analysis.layer_channels(counts))
    via_file = LatencyModel.for_model(lut, pruned).predict_ms()
    assert via_file == pytest.approx(via_planner) and via_file < dense_lm.predict_ms()


def test_whole_model_terms_that_make_the_dense_latency_negative_are_refused():
    model = tiny_model(32)
    with pytest.raises(UsageError, match="rest -1000"):
        LatencyModel.for_model(lut_for(model, energy=False, rest_ms=-1000.0), model)
