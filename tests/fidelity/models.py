"""Small models shaped like the detectors and segmenters of issue 22, written with onnx.helper
or exported: a YOLO-like head whose Reshapes hard-code batch 1 (as Ultralytics exports do),
a segmenter whose only output is a one-channel map [N, 1, H, W], and a graph with NMS in it."""

from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from edgeprune.frontend.load import Model, load_model_bytes
from tests.helpers import export


def _init(name: str, arr: np.ndarray) -> onnx.TensorProto:
    arr = np.asarray(arr)
    return numpy_helper.from_array(arr.astype(np.float32) if arr.dtype == np.float64 else arr, name)


def _conv_bn_relu(nodes, inits, rng, name, x, c_in, c_out, stride):
    inits += [_init(f"{name}.w", rng.standard_normal((c_out, c_in, 3, 3)).astype(np.float32) / np.sqrt(9 * c_in)),
              _init(f"{name}.g", rng.uniform(0.5, 1.5, c_out).astype(np.float32)),
              _init(f"{name}.b", rng.uniform(-0.2, 0.2, c_out).astype(np.float32)),
              _init(f"{name}.m", np.zeros(c_out, np.float32)), _init(f"{name}.v", np.ones(c_out, np.float32))]
    nodes += [helper.make_node("Conv", [x, f"{name}.w"], [f"{name}.c"], name=f"{name}_conv",
                               pads=[1, 1, 1, 1], strides=[stride, stride]),
              helper.make_node("BatchNormalization", [f"{name}.c", f"{name}.g", f"{name}.b", f"{name}.m", f"{name}.v"],
                               [f"{name}.n"], name=f"{name}_bn"),
              helper.make_node("Relu", [f"{name}.n"], [f"{name}.y"], name=f"{name}_relu")]
    return f"{name}.y"


def yolo_like(size: int = 32, classes: int = 3, reg_max: int = 2, seed: int = 0, width: int = 16) -> onnx.ModelProto:
    """Input [1, 3, size, size] → two stride-2 conv blocks → a box head (4·reg_max channels,
    DFL-decoded through Reshape [1, 4, reg_max, A]: batch 1 hard-coded) and a class head
    (Reshape [1, classes, A], sigmoid) → output [1, 4 + classes, A]: cx, cy, w, h, scores."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    w = width
    h = _conv_bn_relu(nodes, inits, rng, "b1", "images", 3, w, 2)
    h = _conv_bn_relu(nodes, inits, rng, "b2", h, w, w, 2)
    side = size // 4
    a = side * side
    inits += [_init("box.w", rng.standard_normal((4 * reg_max, w, 1, 1)).astype(np.float32) * 0.5 * np.sqrt(16 / w)),
              _init("box.b", np.zeros(4 * reg_max, np.float32)),
              _init("cls.w", rng.standard_normal((classes, w, 1, 1)).astype(np.float32) * 0.5 * np.sqrt(16 / w)),
              _init("cls.b", np.zeros(classes, np.float32)),
              _init("box.shape", np.array([1, 4, reg_max, a], np.int64)),
              _init("cls.shape", np.array([1, classes, a], np.int64)),
              _init("bins", np.arange(reg_max, dtype=np.float32).reshape(1, 1, reg_max, 1)),
              _init("axes", np.array([2], np.int64)),
              _init("scale", np.full((1, 4, 1), 4.0, np.float32))]
    ys, xs = np.meshgrid(np.arange(side) + 0.5, np.arange(side) + 0.5, indexing="ij")
    offset = np.stack([xs.ravel() * 4, ys.ravel() * 4, np.full(a, 4.0), np.full(a, 4.0)])[None]
    inits.append(_init("offset", offset.astype(np.float32)))
    nodes += [
        helper.make_node("Conv", [h, "box.w", "box.b"], ["box.map"], name="box_conv"),
        helper.make_node("Reshape", ["box.map", "box.shape"], ["box.r"], name="dfl_reshape"),
        helper.make_node("Softmax", ["box.r"], ["box.p"], name="dfl_softmax", axis=2),
        helper.make_node("Mul", ["box.p", "bins"], ["box.e"], name="dfl_mul"),
        helper.make_node("ReduceSum", ["box.e", "axes"], ["box.d"], name="dfl_sum", keepdims=0),
        helper.make_node("Mul", ["box.d", "scale"], ["box.s"], name="box_scale"),
        helper.make_node("Add", ["box.s", "offset"], ["boxes"], name="box_offset"),
        helper.make_node("Conv", [h, "cls.w", "cls.b"], ["cls.map"], name="cls_conv"),
        helper.make_node("Reshape", ["cls.map", "cls.shape"], ["cls.r"], name="cls_reshape"),
        helper.make_node("Sigmoid", ["cls.r"], ["scores"], name="cls_sigmoid"),
        helper.make_node("Concat", ["boxes", "scores"], ["output0"], name="head_concat", axis=1),
    ]
    graph = helper.make_graph(nodes, "yolo_like",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
                              [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + classes, a])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def heatmap_net(width: int = 16) -> nn.Module:
    """A segmenter with one output channel: [N, 1, H, W] (like a text or saliency detector)."""
    w = width
    net = nn.Sequential(nn.Conv2d(3, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(),
                        nn.Conv2d(w, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(),
                        nn.Conv2d(w, 1, 1))
    gen = np.random.default_rng(1)
    for m in net:
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.data[:] = torch.from_numpy(gen.uniform(-0.1, 0.1, w).astype(np.float32))
            m.weight.data[:] = torch.from_numpy(gen.uniform(0.5, 1.5, w).astype(np.float32))
    return net.eval()


def heatmap_model(size: int = 32, width: int = 16) -> Model:
    torch.manual_seed(0)
    return export(heatmap_net(width), (1, 3, size, size))


def with_nms(size: int = 16) -> onnx.ModelProto:
    """Conv → boxes and scores → NonMaxSuppression inside the graph."""
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    h = _conv_bn_relu(nodes, inits, rng, "b1", "images", 3, 8, 2)
    a = (size // 2) ** 2
    inits += [_init("box.w", rng.standard_normal((4, 8, 1, 1)).astype(np.float32)),
              _init("cls.w", rng.standard_normal((2, 8, 1, 1)).astype(np.float32)),
              _init("box.shape", np.array([1, 4, a], np.int64)), _init("cls.shape", np.array([1, 2, a], np.int64)),
              _init("max_out", np.array([10], np.int64)), _init("iou", np.array([0.5], np.float32)),
              _init("thr", np.array([0.1], np.float32))]
    nodes += [helper.make_node("Conv", [h, "box.w"], ["bm"], name="box_conv"),
              helper.make_node("Reshape", ["bm", "box.shape"], ["br"], name="box_reshape"),
              helper.make_node("Transpose", ["br"], ["boxes"], name="box_t", perm=[0, 2, 1]),
              helper.make_node("Conv", [h, "cls.w"], ["cm"], name="cls_conv"),
              helper.make_node("Reshape", ["cm", "cls.shape"], ["cr"], name="cls_reshape"),
              helper.make_node("Sigmoid", ["cr"], ["scores"], name="cls_sigmoid"),
              helper.make_node("NonMaxSuppression", ["boxes", "scores", "max_out", "iou", "thr"], ["selected"],
                               name="nms")]
    graph = helper.make_graph(nodes, "with_nms",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 2, a]),
                               helper.make_tensor_value_info("selected", TensorProto.INT64, [None, 3])],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def load(proto: onnx.ModelProto) -> Model:
    return load_model_bytes(proto.SerializeToString())
