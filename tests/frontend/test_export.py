"""Every zoo model exports to ONNX that loads, runs in ONNX Runtime like the module, and
keeps what pruning needs: unfused BatchNorm and module names."""

import hashlib

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

import edgeprune.zoo as zoo
from edgeprune.errors import UsageError
from edgeprune.frontend.export import export_module
from edgeprune.frontend.load import load_model


# the op kinds each model exists to exercise, as they appear in the exported graph
SIGNATURE_OPS = {
    "efficientnet_lite0": {"Pad", "Clip"},  # TF "same" padding, ReLU6
    "efficientnet_lite1": {"Pad", "Clip"},
    "mobilenetv3_small": {"HardSwish", "HardSigmoid", "GlobalAveragePool", "Mul"},  # SE block
    "unet_small": {"ConvTranspose", "Resize", "Concat"},
    "csp_neck": {"Split", "Concat", "MaxPool"},
    "vit_tiny": {"LayerNormalization", "MatMul", "Softmax", "Erf"},
}


def _run(proto: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


# ResNet-50 is ResNet-18's export path with bottleneck blocks (resnext_small has those too):
# 24 s of export, so CI leaves it to `make test-extended`
@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow, pytest.mark.extended])
                                  if n == "resnet50" else n for n in zoo.names()])
def test_zoo_model_exports_loads_and_matches_torch(name, tmp_path):
    module = zoo.get(name)
    shape = zoo.input_shape(name)
    path = export_module(module, shape, tmp_path / f"{name}.onnx")
    model = load_model(path)
    onnx.checker.check_model(model.proto)

    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    (got,) = _run(model.proto, {"input": x})
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    assert got.shape == want.shape
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale)

    ops = [n.op_type for n in model.proto.graph.node]
    bn_modules = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    assert ops.count("BatchNormalization") == len(bn_modules)
    initializers = {t.name for t in model.proto.graph.initializer}
    convs = [n for n, m in module.named_modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert {f"{n}.weight" for n in convs} <= initializers
    bns = [n for n, m in module.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert {f"{n}.running_var" for n in bns} <= initializers
    assert [i.name for i in model.proto.graph.output] == ["output"]
    assert SIGNATURE_OPS.get(name, set()) <= set(ops)
    if name == "resnext_small":
        groups = [a.i for n in model.proto.graph.node if n.op_type == "Conv"
                  for a in n.attribute if a.name == "group"]
        assert 8 in groups


def test_resnet_names_follow_the_module_tree(tmp_path):
    proto = onnx.load(export_module(zoo.get("resnet18"), (1, 3, 224, 224), tmp_path / "r.onnx"))
    nodes = {n.name: n for n in proto.graph.node}
    conv = nodes["/layer1/layer1.0/conv1/Conv"]
    assert conv.input[1] == "layer1.0.conv1.weight"
    bn = nodes["/layer1/layer1.0/bn1/BatchNormalization"]
    assert bn.input[0] == conv.output[0]
    assert list(bn.input[1:]) == [f"layer1.0.bn1.{p}" for p in ("weight", "bias", "running_mean", "running_var")]
    assert len(bn.output) == 1  # inference BN, not training mode
    assert proto.opset_import[0].version == 17


def test_transformer_linear_weights_keep_their_module_name(tmp_path):
    module = zoo.get("vit_tiny")
    proto = onnx.load(export_module(module, (1, 3, 32, 32), tmp_path / "v.onnx"))
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    assert not any(n.startswith("onnx::MatMul") for n in weights)
    np.testing.assert_array_equal(weights["blocks.0.attn.qkv.weight_t"],
                                  module.blocks[0].attn.qkv.weight.detach().numpy().T)


def test_same_module_gives_the_same_bytes(tmp_path):
    a = export_module(zoo.get("mobilenetv3_small"), (1, 3, 224, 224), tmp_path / "a.onnx")
    b = export_module(zoo.get("mobilenetv3_small"), (1, 3, 224, 224), tmp_path / "b.onnx")
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()


def test_training_mode_is_restored_and_export_uses_eval_semantics(tmp_path):
    module = zoo.get("digits_cnn").train()
    module.features[0][1].eval()  # a frozen BN stays frozen
    path = export_module(module, (1, 1, 32, 32), tmp_path / "d.onnx")
    assert module.training and module.features[1].training
    assert not module.features[0][1].training
    bn = [n for n in onnx.load(path).graph.node if n.op_type == "BatchNormalization"]
    assert bn and all(len(n.output) == 1 for n in bn)
    x = np.random.default_rng(1).standard_normal((1, 1, 32, 32)).astype(np.float32)
    with torch.no_grad():
        want = module.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(_run(onnx.load(path), {"input": x})[0], want, atol=1e-5)


class TwoInOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.fc = nn.Linear(8, 2)

    def forward(self, image, vector):
        return self.conv(image), self.fc(vector)


def test_several_inputs_and_outputs_are_named(tmp_path):
    module = TwoInOut().eval()
    path = export_module(module, {"image": (1, 3, 8, 8), "vector": (1, 8)}, tmp_path / "t.onnx")
    model = load_model(path)
    assert [i.name for i in model.proto.graph.input if i.name in model.input_shapes] == ["image", "vector"]
    assert [o.name for o in model.proto.graph.output] == ["output", "output_1"]
    assert model.input_shapes == {"image": (1, 3, 8, 8), "vector": (1, 8)}
    path = export_module(module, [(1, 3, 8, 8), (1, 8)], tmp_path / "u.onnx", output_names=["a", "b"])
    proto = onnx.load(path)
    assert [i.name for i in proto.graph.input] == ["input", "input_1"]
    assert [o.name for o in proto.graph.output] == ["a", "b"]


def test_a_shape_the_module_cannot_take_is_a_usage_error_and_writes_nothing(tmp_path):
    with pytest.raises(UsageError, match="cannot export.*1x3x32"):
        export_module(zoo.get("digits_cnn"), (1, 3, 32), tmp_path / "bad.onnx")
    assert list(tmp_path.iterdir()) == []
