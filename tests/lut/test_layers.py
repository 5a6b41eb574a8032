"""Fused-layer extraction from ONNX graphs and the micro-models that time them."""

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from edgeprune.lut.layers import Signature, model_layers
from edgeprune.lut.microbench import micro_model
from tests.lut.tiny import tiny_model


def test_tiny_net_fuses_bn_and_activations_and_finds_depthwise_and_linear():
    layers = model_layers(tiny_model(32))
    kinds = [(l.signature.kind, l.c_in, l.c_out, l.signature.act) for l in layers]
    assert kinds == [("conv", 3, 32, "relu"), ("conv", 32, 64, "relu6"), ("dwconv", 64, 64, "relu6"),
                     ("conv", 64, 32, "none"), ("linear", 32, 10, "none")]
    stem = layers[0]
    assert stem.signature.kernel == (3, 3) and stem.signature.stride == (2, 2)
    assert stem.signature.in_hw == (32, 32) and stem.signature.pads == (1, 1, 1, 1)
    assert any("BatchNormalization" in f for f in stem.fused) and stem.signature.bias
    assert layers[2].signature.in_hw == (16, 16)


def test_signature_key_round_trips_through_json_and_ignores_channels():
    sig = model_layers(tiny_model(32))[1].signature
    assert Signature.from_json(sig.to_json()) == sig
    assert model_layers(tiny_model(48))[1].signature.key == sig.key


def _conv_graph(auto_pad):
    w = numpy_helper.from_array(np.zeros((8, 4, 3, 3), np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="c", auto_pad=auto_pad, strides=[2, 2])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 15, 15])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    return onnx.shape_inference.infer_shapes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))


def test_same_padding_becomes_explicit_pads():
    (upper,) = model_layers(_conv_graph("SAME_UPPER"))
    (lower,) = model_layers(_conv_graph("SAME_LOWER"))
    assert upper.signature.pads == (1, 1, 1, 1)  # total 2 on 15 -> 8 with stride 2
    assert upper.signature.out_hw() == (8, 8) and lower.signature.out_hw() == (8, 8)
    assert not upper.signature.bias


def test_micro_models_run_and_produce_the_layer_output_shape():
    sess_opts = ort.SessionOptions()
    sess_opts.log_severity_level = 3
    for layer in model_layers(tiny_model(32)):
        sig = layer.signature
        for c_in, c_out in [(layer.c_in, layer.c_out), (16, 16)]:
            m = micro_model(sig, c_in, c_out)
            onnx.checker.check_model(m)
            s = ort.InferenceSession(m.SerializeToString(), sess_opts, providers=["CPUExecutionProvider"])
            shape = [d for d in s.get_inputs()[0].shape]
            (y,) = s.run(None, {"x": np.ones(shape, np.float32)})
            if sig.kind == "linear":
                assert y.shape == (sig.in_hw[0], c_out)
            else:
                assert y.shape == (1, c_out, *sig.out_hw())


def test_int8_micro_model_is_qdq_and_runs():
    sig = Signature(kind="conv", kernel=(3, 3), pads=(1, 1, 1, 1), in_hw=(8, 8), act="relu", dtype="int8")
    m = micro_model(sig, 16, 32)
    ops = [n.op_type for n in m.graph.node]
    assert ops.count("QuantizeLinear") == 2 and ops.count("DequantizeLinear") == 3
    s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = s.run(None, {"x": np.ones((1, 16, 8, 8), np.float32)})
    assert y.shape == (1, 32, 8, 8)
    # and the signature extracted from a QDQ model says int8
    (layer,) = model_layers(onnx.shape_inference.infer_shapes(m))
    assert layer.signature.dtype == "int8" and (layer.c_in, layer.c_out) == (16, 32)


def test_bias_comes_from_a_bias_input_or_a_folded_batchnorm_not_from_an_activation():
    w = numpy_helper.from_array(np.zeros((8, 4, 1, 1), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Relu", ["c"], ["y"], name="relu")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    (layer,) = model_layers(onnx.shape_inference.infer_shapes(
        helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])))
    assert layer.signature.act == "relu" and not layer.signature.bias
    assert all(l.signature.bias for l in model_layers(tiny_model(32)) if l.signature.kind != "linear")
