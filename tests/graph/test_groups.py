"""Channel groups found on small graphs, one coupling pattern each."""

import torch

from edgeprune.graph import analyze
from edgeprune.graph.types import IN, OUT, SHAPE, THROUGH
from tests.graph.archs import ARCHS
from tests.helpers import export


def groups_of(name):
    cls, shape = ARCHS[name]
    torch.manual_seed(0)
    model = export(cls(), shape)
    return model, analyze(model)


def by_root(analysis, fragment):
    return next(g for g in analysis.groups if fragment in g.name)


def test_conv_bn_chain_is_one_group_per_conv_and_the_output_is_frozen():
    _, a = groups_of("chain")
    assert [g.channels for g in a.groups] == [16, 24, 8]
    first = a.groups[0]
    assert first.prunable
    params = {(m.param, m.role) for m in first.members}
    assert {("weight", OUT), ("bn_scale", THROUGH), ("bn_bias", THROUGH), ("bn_mean", THROUGH),
            ("bn_var", THROUGH), ("weight", IN)} <= params
    assert a.groups[-1].frozen.startswith("model output")


def test_residual_add_and_sub_tie_the_stem_to_both_block_outputs():
    _, a = groups_of("residual")
    stem = by_root(a, "stem")
    producers = {m.node for m in stem.members if m.role == OUT}
    assert len(producers) == 3  # stem conv + the last conv of each block
    assert stem.prunable and stem.channels == 16


def test_concat_keeps_producers_separate_and_split_and_slice_are_fixed_up():
    _, a = groups_of("concat_split")
    assert by_root(a, "/a/").prunable and by_root(a, "/b/").prunable
    c = by_root(a, "/c/")
    kinds = {m.param for m in c.members if m.role == SHAPE}
    assert {"split", "slice"} <= kinds


def test_depthwise_conv_couples_its_input_and_output():
    _, a = groups_of("depthwise")
    g = a.groups[0]
    assert g.prunable
    assert any(m.op_type == "Conv" and m.role == THROUGH for m in g.members)
    assert any(m.param == "group" for m in g.members)


def test_grouped_conv_prunes_whole_groups_or_freezes_with_the_op_named():
    _, a = groups_of("grouped")
    first = a.groups[0]
    assert first.prunable and first.atom_size == 4   # 32 channels in 8 conv groups
    assert "grouped conv with 4 inputs and 8 outputs per group" in by_root(a, "/b/").frozen


def test_squeeze_excite_joins_the_gated_tensor_and_the_gate():
    _, a = groups_of("squeeze_excite")
    g = a.groups[0]
    assert g.prunable
    ops = {(m.node.split("/")[1], m.role) for m in g.members}
    assert ("fc1", IN) in ops and ("fc2", OUT) in ops and ("b", IN) in ops


def test_flatten_to_linear_owns_spatial_features_per_channel():
    m, a = groups_of("flatten_linear")
    g = a.groups[0]
    fc_in = next(s for s in a.slices if s.member.role == IN and "fc1" in s.member.node)
    assert len(fc_in.ids) == 16 * 4 * 4
    assert g.prunable and a.groups[1].prunable   # hidden units of Linear→GELU→Linear


def test_layernorm_across_channels_freezes_the_stream_but_not_the_mlp_hidden_units():
    _, a = groups_of("mlp")
    assert "LayerNormalization" in a.groups[0].frozen
    assert by_root(a, "fc1").prunable


def test_attention_heads_are_pruned_whole_across_packed_q_k_v():
    _, a = groups_of("attention")
    qkv = by_root(a, "qkv")
    # q and k head dims pair up in q @ k^T; v keeps its own: 32 + 32 channels in 4 heads
    assert qkv.prunable and qkv.channels == 64 and qkv.atom_size == 16
    assert any(m.role == SHAPE and "Reshape" in m.op_type for m in qkv.members)


def test_separate_q_k_v_projections_join_one_head_group():
    _, a = groups_of("separate_qkv")
    q = by_root(a, "/q/")
    producers = {m.node for m in q.members if m.role == OUT}
    assert {n.split("/")[1] for n in producers} >= {"q", "k", "v"}
    assert q.prunable and q.atom_size == 16


def test_every_group_names_a_reason_when_frozen_and_ids_are_stable():
    for name in ARCHS:
        _, a1 = groups_of(name)
        _, a2 = groups_of(name)
        assert [g.to_json() for g in a1.groups] == [g.to_json() for g in a2.groups]
        for g in a1.groups:
            assert g.prunable or g.frozen


def test_an_op_without_a_rule_freezes_what_it_touches():
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from edgeprune.frontend.load import load_model_bytes

    w = numpy_helper.from_array(np.ones((8, 3, 1, 1), np.float32), "w")
    w2 = numpy_helper.from_array(np.ones((4, 8, 1, 1), np.float32), "w2")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["a"], name="conv"),
         helper.make_node("LRN", ["a"], ["b"], name="lrn", size=3),
         helper.make_node("Conv", ["b", "w2"], ["y"], name="conv2")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 4])], [w, w2])
    model = load_model_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    a = analyze(model)
    assert "LRN 'lrn' has no channel rule" in a.groups[0].frozen
