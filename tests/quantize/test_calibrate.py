"""The streamed int8 calibration gives ORT's own calibrators' result to the bit (ranges, the
quantized model, bias correction), and bias correction's mean output matches a convolution."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import edgeprune.quantize.calibrate as calibrate
from edgeprune.quantize import quantize_int8
from edgeprune.quantize.bias_correction import _mean_output
from tests.helpers import export
from tests.recover.models import conv_net

pytestmark = pytest.mark.skipif(not calibrate.streamed("percentile"),
                                reason="this onnxruntime has no calibration cache")


@pytest.fixture(scope="module")
def model():
    return export(conv_net(), (1, 3, 16, 16))


@pytest.mark.parametrize("method", calibrate.STREAMED)
@pytest.mark.parametrize("correct_bias", (False, True))
def test_streamed_calibration_gives_the_model_ort_calibration_gives(model, method, correct_bias, monkeypatch):
    # 40 samples: not a multiple of the 16-sample chunk, so a short last chunk is reduced too
    data = {"x0": np.random.default_rng(0).standard_normal((40, 3, 16, 16)).astype(np.float32)}
    streamed = quantize_int8(model, data, method=method, correct_bias=correct_bias)
    monkeypatch.setattr(calibrate, "streamed", lambda m: False)
    theirs = quantize_int8(model, data, method=method, correct_bias=correct_bias)
    assert streamed.proto.SerializeToString() == theirs.proto.SerializeToString()


def test_the_percentile_is_the_left_edge_of_the_bin_holding_it():
    # 3 of 100000 values above the 99.999th percentile's count: the 2nd largest sets the bin
    proto = _identity()
    x = np.random.default_rng(1).random((10, 1, 100, 100)).astype(np.float32)
    x[3, 0, 0, :3] = [50.0, 20.0, 10.0]
    lo, hi = calibrate.collect(proto, {"x": x}, "percentile").ranges["x"]
    hist, edges = np.histogram(np.abs(x.ravel()), bins=calibrate.PERCENTILE_BINS)
    idx = np.searchsorted(np.cumsum(hist / hist.sum()), 0.99999)
    assert hi == edges.astype(np.float32)[idx] and lo == np.float32(x.min())


@pytest.mark.parametrize("stride,dilation,groups,pads", [(1, 1, 1, (1, 1, 1, 1)), (2, 1, 4, (0, 1, 1, 0)),
                                                         (2, 2, 1, (2, 2, 2, 2)), (1, 1, 8, (0, 0, 0, 0))])
def test_mean_output_is_the_mean_of_the_convolution(stride, dilation, groups, pads):
    from onnx import helper

    rng = np.random.default_rng(2)
    mean_x = rng.standard_normal((8, 11, 9))
    dw = rng.standard_normal((8, 8 // groups, 3, 3))
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], strides=[stride] * 2, dilations=[dilation] * 2,
                            group=groups, pads=list(pads))
    x = F.pad(torch.from_numpy(mean_x[None]), (pads[1], pads[3], pads[0], pads[2]))
    y = F.conv2d(x, torch.from_numpy(dw), stride=stride, dilation=dilation, groups=groups)
    np.testing.assert_allclose(_mean_output(node, mean_x, dw), y.mean((0, 2, 3)).numpy(), rtol=1e-12, atol=1e-12)


def _identity():
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 100, 100])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 100, 100])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    proto.ir_version = 8
    return proto
