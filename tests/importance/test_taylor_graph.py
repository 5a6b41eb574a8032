"""The ONNX graph run in PyTorch (for gradients) computes what ONNX Runtime computes."""

import numpy as np
import pytest
import torch

from edgeprune import zoo
from edgeprune.errors import UsageError
from edgeprune.frontend.export import export_module
from edgeprune.frontend.load import load_model
from edgeprune.importance.torch_graph import TorchGraph
from tests.helpers import random_feeds, run


@pytest.mark.parametrize("name", ["resnext_small", "csp_neck", "csp_yolo", "unet_small", "vit_tiny", "digits_cnn",
                                  pytest.param("mobilenetv3_small", marks=pytest.mark.slow),
                                  pytest.param("efficientnet_lite0", marks=pytest.mark.slow)])
def test_matches_onnx_runtime_on_zoo_models(tmp_path, name):
    path = export_module(zoo.get(name), zoo.input_shape(name), tmp_path / f"{name}.onnx")
    model = load_model(path)
    feeds = random_feeds(model)
    want = run(model.proto, feeds)
    with torch.no_grad():
        got = TorchGraph(model.proto)({k: torch.from_numpy(v) for k, v in feeds.items()})
    for w, g in zip(want, got):
        scale = max(1.0, float(np.abs(w).max()))
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-4, atol=1e-4 * scale)


def test_an_unknown_op_names_the_node():
    import onnx
    from onnx import helper

    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])
    g = helper.make_graph([helper.make_node("Hardmax", ["x"], ["y"], name="hm")], "g", [x], [y])
    with pytest.raises(UsageError, match="Hardmax \\(node 'hm'\\)"):
        TorchGraph(helper.make_model(g))
