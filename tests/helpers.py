"""Shared test helpers: export small torch models, run ONNX models, check the pruning invariant."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch

from edgeprune.frontend.load import Model, load_model_bytes
from edgeprune.graph import analyze
from edgeprune.importance import scores
from edgeprune.rewrite import prune, ratio_keep
from edgeprune.rewrite.reference import zero_removed


def export(module: torch.nn.Module, *shapes: tuple[int, ...], opset: int = 17) -> Model:
    module.eval()
    args = tuple(torch.randn(*s) for s in shapes)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, buf, dynamo=False, opset_version=opset,
                          input_names=[f"x{i}" for i in range(len(shapes))],
                          training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    return load_model_bytes(buf.getvalue())


def run(proto: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def random_feeds(model: Model, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape).astype(np.float32) for name, shape in model.input_shapes.items()}


def assert_invariant(model: Model, keep: dict, rtol: float = 1e-4, analysis=None) -> Model:
    """Prune, then check: pruned outputs == original with removed channels zeroed where consumed;
    params and MACs strictly fall."""
    analysis = analysis or analyze(model)
    pruned = prune(model, analysis, keep)
    feeds = random_feeds(model)
    want = run(zero_removed(model, analysis, keep), feeds)
    got = run(pruned.proto, feeds)
    for w, g in zip(want, got):
        assert w.shape == g.shape
        scale = max(1.0, float(np.abs(w).max()))
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * scale)
    after = analyze(pruned)
    if keep:
        assert after.params < analysis.params
        assert after.macs < analysis.macs
    return pruned


def half_keep(model: Model, round_to: int = 1, criterion: str = "l1") -> dict:
    analysis = analyze(model)
    return ratio_keep(analysis, scores(model, analysis, criterion), 0.5, round_to)
