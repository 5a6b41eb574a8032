"""Taylor importance for any output (issue 22): the ONNX graph run in PyTorch takes batches
through graphs that hard-code batch 1, every op it cannot run is a UsageError naming the node,
and the loss is a distillation loss over every output, not only class scores."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from edgeprune import zoo
from edgeprune.errors import UsageError
from edgeprune.frontend.export import export_module
from edgeprune.frontend.load import load_model
from edgeprune.graph import analyze
from edgeprune.importance.taylor import taylor_scores
from edgeprune.importance.torch_graph import TorchGraph
from tests.fidelity.models import heatmap_model, load, with_nms, yolo_like
from tests.helpers import run


def _per_sample(proto, name, x):
    return [np.concatenate(parts) for parts in zip(*(run(proto, {name: x[i:i + 1]}) for i in range(len(x))))]


def test_a_graph_hard_coding_batch_1_in_its_reshapes_runs_a_batch():
    # the YOLOv8n failure: Reshape [1, 4, reg_max, anchors] given a batch of 16
    model = load(yolo_like())
    x = np.random.default_rng(0).standard_normal((16, 3, 32, 32)).astype(np.float32)
    graph = TorchGraph(model.proto)
    with torch.no_grad():
        got = graph({"images": torch.from_numpy(x)})
    assert graph.mode == "rebatch"        # the constants' leading 1 read as the batch size
    want = _per_sample(model.proto, "images", x)
    assert got[0].shape == (16, 7, 64)
    np.testing.assert_allclose(got[0].numpy(), want[0], rtol=1e-4, atol=1e-4)


def test_a_graph_whose_constant_shapes_cannot_be_rebatched_runs_sample_by_sample():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])
    inits = [onnx.numpy_helper.from_array(np.array([2, 4], np.int64), "s24"),
             onnx.numpy_helper.from_array(np.array([1, 8], np.int64), "s18")]
    nodes = [helper.make_node("Reshape", ["x", "s24"], ["a"], name="to_2x4"),   # batch folded away
             helper.make_node("Softmax", ["a"], ["b"], name="softmax", axis=0),
             helper.make_node("Reshape", ["b", "s18"], ["y"], name="to_1x8")]
    proto = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits))
    xs = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    graph = TorchGraph(proto)
    got = graph({"x": torch.from_numpy(xs)})[0]
    assert graph.mode == "per-sample"
    np.testing.assert_allclose(got.numpy(), _per_sample(proto, "x", xs)[0], rtol=1e-5, atol=1e-6)


def test_the_zoo_yolo_export_hard_codes_batch_1_and_taylor_scores_it(tmp_path):
    path = export_module(zoo.get("csp_yolo"), zoo.input_shape("csp_yolo"), tmp_path / "yolo.onnx")
    model = load_model(path)
    consts = {t.name: onnx.numpy_helper.to_array(t) for t in model.proto.graph.initializer}
    shapes = [consts[n.input[1]].tolist() for n in model.proto.graph.node if n.op_type == "Reshape"]
    assert [1, 4, 8, 84] in shapes        # as Ultralytics exports: the batch is a constant
    analysis = analyze(model)
    data = {"input": np.random.default_rng(0).standard_normal((4, 3, 64, 64)).astype(np.float32)}
    got = taylor_scores(model, analysis, data, batch_size=4)
    values = np.concatenate(list(got.values()))
    assert np.isfinite(values).all() and (values >= 0).all() and values.sum() > 0


def test_a_graph_that_batches_fine_is_run_as_one_batch(tmp_path):
    path = export_module(zoo.get("csp_neck"), zoo.input_shape("csp_neck"), tmp_path / "neck.onnx")
    graph = TorchGraph(load_model(path).proto)
    with torch.no_grad():
        graph({"input": torch.zeros(4, 3, 64, 64)})
    assert graph.mode == "batch" and graph.per_sample is False


def test_a_segmenter_with_a_one_channel_output_gets_scores():
    # the text-detector failure: "[16, 1, 320, 320]; it needs a class axis (axis 1)"
    model = heatmap_model()
    analysis = analyze(model)
    data = {"x0": np.random.default_rng(0).standard_normal((16, 3, 32, 32)).astype(np.float32)}
    got = taylor_scores(model, analysis, data)
    for g in analysis.prunable():
        assert np.isfinite(got[g.id]).all() and (got[g.id] > 0).all()
    again = taylor_scores(model, analysis, data)
    for gid in got:                       # seeded projections: the same inputs, the same scores
        np.testing.assert_array_equal(got[gid], again[gid])


def test_distillation_scores_rank_channels_by_how_much_removing_them_changes_the_output():
    model = heatmap_model()
    analysis = analyze(model)
    data = {"x0": np.random.default_rng(0).standard_normal((64, 3, 32, 32)).astype(np.float32)}
    scores = taylor_scores(model, analysis, data, max_samples=64)
    bn = next(n for n in model.proto.graph.node if n.op_type == "BatchNormalization")
    gid = next(g.id for g in analysis.groups if any(m.tensor == bn.input[1] for m in g.members))
    base = _per_sample(model.proto, "x0", data["x0"])[0]
    change = []
    for c in range(len(scores[gid])):
        proto = onnx.ModelProto()
        proto.CopyFrom(model.proto)
        for t in proto.graph.initializer:
            if t.name in (bn.input[1], bn.input[2]):
                arr = onnx.numpy_helper.to_array(t).copy()
                arr[c] = 0
                t.CopyFrom(onnx.numpy_helper.from_array(arr, t.name))
        out = _per_sample(proto, "x0", data["x0"])[0]
        change.append(np.linalg.norm(out - base) / np.linalg.norm(base))
    rank = lambda v: np.argsort(np.argsort(v))  # noqa: E731
    rho = np.corrcoef(rank(scores[gid]), rank(np.array(change)))[0, 1]
    assert rho > 0.85, (rho, scores[gid], change)


def test_labels_on_an_output_without_a_class_axis_are_refused():
    model = heatmap_model()
    data = {"x0": np.zeros((4, 3, 32, 32), np.float32)}
    with pytest.raises(UsageError, match="no class axis"):
        taylor_scores(model, analyze(model), data, labels=np.zeros(4, np.int64))


def test_an_op_that_fails_when_run_is_a_usage_error_naming_the_node():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 3])
    shape = onnx.numpy_helper.from_array(np.array([3, 3], np.int64), "shape")
    g = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"], name="bad_reshape")], "g",
                          [x], [y], [shape])
    with pytest.raises(UsageError, match="cannot run Reshape \\(node 'bad_reshape'\\) in PyTorch"):
        TorchGraph(helper.make_model(g))({"x": torch.zeros(1, 8)})


def test_nms_inside_the_graph_is_refused_with_what_to_do():
    with pytest.raises(UsageError, match="NonMaxSuppression \\(node 'nms'\\).*--criterion l1"):
        TorchGraph(with_nms())


def test_shape_arithmetic_ops_run():
    # Shape → Gather → Concat → Reshape, as exporters write a dynamic flatten; Div on ints truncates
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 12])
    inits = [onnx.numpy_helper.from_array(np.array(0, np.int64), "zero"),
             onnx.numpy_helper.from_array(np.array([24], np.int64), "total"),
             onnx.numpy_helper.from_array(np.array([0], np.int64), "axes")]
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="shape"),
             helper.make_node("Gather", ["s", "zero"], ["n"], name="gather", axis=0),
             helper.make_node("Unsqueeze", ["n", "axes"], ["n1"], name="unsq"),
             helper.make_node("Div", ["total", "n1"], ["rest"], name="div"),
             helper.make_node("Concat", ["n1", "rest"], ["shape2"], name="concat", axis=0),
             helper.make_node("Reshape", ["x", "shape2"], ["y"], name="reshape")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits))
    got = TorchGraph(model)({"x": torch.arange(24.0).reshape(2, 3, 4)})[0]
    assert got.shape == (2, 12) and got.dtype == torch.float32
