"""Small models for the device tests: one conv per task, and a net with few LUT entries so
tests that profile through a remote device stay short."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from edgeprune.devices.base import BenchTask
from tests.helpers import export


class Micro(nn.Module):
    """conv 3->4 + ReLU, global pool, linear 4->3: few LUT entries, so the test stays short."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def micro_onnx(folder: Path) -> Path:
    path = Path(folder) / "micro.onnx"
    path.write_bytes(export(Micro(), (1, 3, 8, 8)).proto.SerializeToString())
    return path


def conv_model(folder: Path, c_out: int, c_in: int = 8, size: int = 16) -> Path:
    rng = np.random.default_rng(c_out)
    w = numpy_helper.from_array(rng.standard_normal((c_out, c_in, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["y"], ["z"])],
        "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c_in, size, size])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, c_out, size, size])], [w])
    path = Path(folder) / f"conv{c_out}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def tasks_for(folder: Path, widths, **kw) -> list[BenchTask]:
    return [BenchTask(id=f"conv|{c}", model=conv_model(folder, c), warmup=1, repeats=3, min_seconds=0.0, **kw)
            for c in widths]
