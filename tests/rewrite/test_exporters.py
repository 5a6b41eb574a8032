"""Graphs as other exporters write them: torch's dynamo exporter (opset 18, Reshape with
allowzero), a channels-last graph with Transposes as tf2onnx writes it, weights in
Constant nodes as Paddle writes them."""

import warnings

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from edgeprune.frontend.load import load_model_bytes
from edgeprune.graph import analyze
from tests.graph.archs import ARCHS
from tests.helpers import assert_invariant, half_keep


@pytest.mark.slow
@pytest.mark.parametrize("name", ["flatten_linear", "squeeze_excite", "concat_split", "attention", "separate_qkv"])
def test_dynamo_exports_prune_to_the_zeroed_reference(name):
    cls, shape = ARCHS[name]
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(cls().eval(), (torch.randn(*shape),), dynamo=True, opset_version=18,
                                    verbose=False)
    model = load_model_bytes(program.model_proto.SerializeToString())
    assert_invariant(model, half_keep(model))


def _channels_last_graph(constant_nodes: bool):
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((16, 3, 3, 3)).astype(np.float32)
    scale = rng.standard_normal(16).astype(np.float32)
    w2 = rng.standard_normal((8, 16, 1, 1)).astype(np.float32)
    consts = {"w1": w1, "scale": scale, "w2": w2}
    nodes = [
        helper.make_node("Transpose", ["x"], ["xc"], perm=[0, 3, 1, 2], name="to_nchw"),
        helper.make_node("Conv", ["xc", "w1"], ["a"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["a"], ["b"], name="relu"),
        helper.make_node("Transpose", ["b"], ["bl"], perm=[0, 2, 3, 1], name="to_nhwc"),
        helper.make_node("Mul", ["bl", "scale"], ["c"], name="scale_last_axis"),
        helper.make_node("Transpose", ["c"], ["cc"], perm=[0, 3, 1, 2], name="back"),
        helper.make_node("Conv", ["cc", "w2"], ["y"], name="conv2"),
    ]
    inits = []
    if constant_nodes:
        nodes = [helper.make_node("Constant", [], [k], value=numpy_helper.from_array(v), name=f"const_{k}")
                 for k, v in consts.items()] + nodes
    else:
        inits = [numpy_helper.from_array(v, k) for k, v in consts.items()]
    graph = helper.make_graph(nodes, "nhwc", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 8, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


@pytest.mark.parametrize("constant_nodes", [False, True])
def test_channels_last_graph_with_transposes_and_constant_nodes(constant_nodes):
    model = load_model_bytes(_channels_last_graph(constant_nodes))
    analysis = analyze(model)
    first = analysis.groups[0]
    assert first.prunable and first.channels == 16
    assert any(m.node == "scale_last_axis" and m.axis == 0 for m in first.members)
    assert_invariant(model, half_keep(model), analysis=analysis)
