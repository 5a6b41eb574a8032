"""int8 for ONNX Runtime: BN folds exactly, static QDQ keeps fidelity with every
calibration method, and ORT fuses the QDQ patterns into integer kernels."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edgeprune.errors import UsageError
from edgeprune.fidelity import fidelity, outputs
from edgeprune.quantize import METHODS, fold_bn, quantize_int8
from tests.helpers import export
from tests.recover.models import conv_net


@pytest.fixture(scope="module")
def model():
    return export(conv_net(), (1, 3, 16, 16))


def _data(n, seed):
    return {"x0": np.random.default_rng(seed).standard_normal((n, 3, 16, 16)).astype(np.float32)}


def test_bn_folding_is_exact_and_removes_every_bn_after_a_conv(model):
    folded = fold_bn(model.proto)
    assert not any(n.op_type == "BatchNormalization" for n in folded.graph.node)
    onnx.checker.check_model(folded)
    f = fidelity(model, folded, _data(16, 1))
    assert f.top1_agreement == 1.0 and f.max_abs_error < 1e-5


@pytest.mark.parametrize("method", METHODS)
def test_int8_follows_fp32_with_each_calibration_method(model, method):
    q = quantize_int8(model, _data(32, 0), method=method)
    ops = {n.op_type for n in q.proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # ReLU / ReLU6 went into the conv's quantization range
    assert not ops & {"Relu", "Clip", "BatchNormalization"}
    f = fidelity(model, q, _data(64, 1))
    assert f.top1_agreement >= 0.95
    assert f.max_abs_error < 0.05


def test_weights_are_quantized_per_output_channel(model):
    q = quantize_int8(model, _data(16, 0))
    inits = {t.name: t for t in q.proto.graph.initializer}
    conv = next(n for n in q.proto.graph.node if n.op_type == "Conv")
    dq = next(n for n in q.proto.graph.node if n.output[0] == conv.input[1])
    assert inits[dq.input[0]].data_type == onnx.TensorProto.INT8
    assert len(inits[dq.input[1]].dims) == 1 and inits[dq.input[1]].dims[0] == inits[dq.input[0]].dims[0]


def test_ort_runs_integer_kernels(model, tmp_path):
    q = quantize_int8(model, _data(16, 0))
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    so.log_severity_level = 3
    ort.InferenceSession(q.proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    ops = {n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node}
    assert "QLinearConv" in ops and "Conv" not in ops


def test_unknown_method_is_a_usage_error(model):
    with pytest.raises(UsageError, match="calibration method"):
        quantize_int8(model, _data(4, 0), method="kl")


def test_bias_correction_removes_the_mean_shift_of_rounded_weights():
    # a depthwise-heavy net with a few channels of wide weight range: rounding shifts means
    import torch

    net = conv_net(width=8)
    with torch.no_grad():
        net.dw[0].weight[:, :, 1, 1] += 3.0
    model = export(net, (1, 3, 16, 16))
    calib, held = _data(64, 0), _data(64, 1)
    fp32 = outputs(model, held)[0]
    err = {cb: outputs(quantize_int8(model, calib, correct_bias=cb), held)[0] - fp32 for cb in (False, True)}
    mean_shift = {cb: float(np.abs(e.mean(0)).mean()) for cb, e in err.items()}
    assert mean_shift[True] < mean_shift[False]


def test_an_opset_11_export_is_quantized_per_channel_after_conversion_to_opset_13():
    # Paddle2ONNX writes opset 11; per-channel DequantizeLinear needs `axis` (opset 13)
    from onnx import TensorProto, helper, numpy_helper

    from edgeprune.frontend.load import load_model_bytes

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1] * 4),
                               helper.make_node("Relu", ["c"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 8])], [w])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    proto.ir_version = 7
    model = load_model_bytes(proto.SerializeToString())
    data = {"x": rng.standard_normal((8, 3, 8, 8)).astype(np.float32)}
    q = quantize_int8(model, data)
    assert [o.version for o in q.proto.opset_import if o.domain in ("", "ai.onnx")] == [13]
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in q.proto.graph.node}
    f = fidelity(model, q, data)
    scale = float(np.abs(outputs(model, data)[0]).max())
    assert f.top1_agreement > 0.95 and f.max_abs_error < 0.03 * scale   # within a few int8 steps
