"""MODEL resolution: .onnx files, PyTorch factories, --input-shape and --weights."""

import textwrap

import pytest
import torch
from hypothesis import given, strategies as st

from edgeprune.errors import UsageError
from edgeprune.frontend.export import export_module
from edgeprune.frontend.resolve import parse_input_shape, resolve_model


@given(st.lists(st.integers(1, 4096), min_size=1, max_size=6))
def test_parse_input_shape_round_trips_dims(dims):
    assert parse_input_shape("x".join(map(str, dims))) == tuple(dims)


def test_parse_named_input_shapes():
    assert parse_input_shape("image:1x3x32x32,mask:1x8") == {"image": (1, 3, 32, 32), "mask": (1, 8)}
    assert parse_input_shape(" 1X3X224X224 ") == (1, 3, 224, 224)


@pytest.mark.parametrize("text", ["", "1x3x", "x3", "1x0x4", "1,3,224", "a:1x3,a:1x3", ":1x2", "1x-3", "abc"])
def test_bad_input_shape_names_the_flag(text):
    with pytest.raises(UsageError, match="--input-shape"):
        parse_input_shape(text)


@pytest.fixture
def user_package(tmp_path, monkeypatch):
    """A user's own factory module in the current folder, as on the command line."""
    pkg = tmp_path / "userpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "models.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        def tiny():
            torch.manual_seed(0)
            return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)).train()

        def broken():
            raise RuntimeError("no GPU here")

        def not_a_module():
            return 42

        NOT_CALLABLE = 3
    """))
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    import sys
    for name in [m for m in sys.modules if m.startswith("userpkg")]:
        del sys.modules[name]


def test_zoo_factory_uses_its_default_input_shape(tmp_path):
    resolved = resolve_model("edgeprune.zoo:digits_cnn", workdir=tmp_path)
    assert resolved.onnx_path == tmp_path / "digits_cnn.onnx"
    assert resolved.model.input_shapes == {"input": (1, 1, 32, 32)}
    assert resolved.model.name == "digits_cnn"
    assert not resolved.module.training


def test_user_factory_needs_an_input_shape(user_package):
    with pytest.raises(UsageError, match="userpkg.models:tiny.*--input-shape"):
        resolve_model("userpkg.models:tiny", workdir=user_package / "work")
    resolved = resolve_model("userpkg.models:tiny", "1x3x16x16", workdir=user_package / "work")
    assert resolved.model.input_shapes == {"input": (1, 3, 16, 16)}
    assert not resolved.module.training  # exported and kept in eval mode
    ops = [n.op_type for n in resolved.model.proto.graph.node]
    assert "BatchNormalization" in ops


def test_weights_are_loaded_into_the_factory_model(user_package):
    first = resolve_model("userpkg.models:tiny", "1x3x16x16", workdir=user_package / "a").module
    state = {k: v + 1.0 if v.is_floating_point() else v for k, v in first.state_dict().items()}
    torch.save(state, user_package / "w.pt")
    torch.save({"epoch": 3, "state_dict": state}, user_package / "ckpt.pt")
    for weights in ("w.pt", "ckpt.pt"):
        module = resolve_model("userpkg.models:tiny", "1x3x16x16", weights=str(user_package / weights),
                               workdir=user_package / f"work-{weights}").module
        assert torch.equal(module[0].weight, state["0.weight"])


def test_weights_that_carry_code_are_refused_without_running_it(user_package):
    marker = user_package / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"0.weight": Payload()}, user_package / "evil.pt")
    with pytest.raises(UsageError, match="evil.pt: refused: .*would run code: it references"):
        resolve_model("userpkg.models:tiny", "1x3x16x16", weights=str(user_package / "evil.pt"),
                      workdir=user_package / "w")
    assert not marker.exists()


def _bad_weights(folder, name: str, content) -> None:
    """Write `content` (bytes, or an object for torch.save) as weights; expect a UsageError."""
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    resolve_model("userpkg.models:tiny", "1x3x16x16", weights=str(path), workdir=folder / "w")


@pytest.mark.parametrize("name, content, message", [
    ("bad.pt", {"0.weight": torch.zeros(8, 3, 5, 5)},
     r"bad.pt: does not match .*missing .*shape mismatch 0.weight"),
    ("tensor.pt", torch.zeros(3), "tensor.pt: holds a Tensor, not a state dict"),
    ("junk.pt", b"not a checkpoint", "junk.pt: refused: not a plain tensor file"),
    ("missing.pt", None, "--weights .*missing.pt.*no such file"),
    ("broken.pt", b"PK\x03\x04 truncated zip", "broken.pt: (not a readable PyTorch weights file|refused)"),
])
def test_bad_weights_name_the_file(user_package, name, content, message):
    with pytest.raises(UsageError, match=message):
        _bad_weights(user_package, name, content)


@pytest.mark.parametrize("spec, message", [
    ("nosuchpkg.models:tiny", "MODEL 'nosuchpkg.models:tiny': cannot import 'nosuchpkg.models'"),
    ("userpkg.models:absent", "module 'userpkg.models' has no 'absent'"),
    ("userpkg.models:NOT_CALLABLE", "is not callable"),
    ("userpkg.models:broken", "factory raised RuntimeError: no GPU here"),
    ("userpkg.models:not_a_module", "returned int, not a torch nn.Module"),
    ("nothing_here", "MODEL 'nothing_here': neither an .onnx file nor a PyTorch factory"),
    ("missing.onnx", "missing.onnx: no such file"),
])
def test_bad_models_are_usage_errors_naming_the_spec(user_package, spec, message):
    with pytest.raises(UsageError, match=message.replace(".", r"\.").replace("(", r"\(")):
        resolve_model(spec, "1x3x16x16", workdir=user_package / "w")


def test_onnx_file_resolves_with_and_without_input_shape(tmp_path):
    from edgeprune import zoo

    path = export_module(zoo.get("digits_cnn"), (1, 1, 32, 32), tmp_path / "d.onnx")
    resolved = resolve_model(str(path))
    assert resolved.module is None and resolved.onnx_path == path
    assert resolved.model.input_shapes == {"input": (1, 1, 32, 32)}
    assert resolve_model(str(path), "1x1x32x32").model.input_shapes == {"input": (1, 1, 32, 32)}
    with pytest.raises(UsageError, match="--input-shape gives 1x1x16x16"):
        resolve_model(str(path), "1x1x16x16")
    with pytest.raises(UsageError, match="--weights .*only a PyTorch factory"):
        resolve_model(str(path), weights="w.pt")
