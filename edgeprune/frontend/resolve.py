"""MODEL argument → a loaded `Model`: an `.onnx` path, or a PyTorch factory
`package.module:function` (optionally with `--weights FILE.pt`) exported to ONNX."""

from __future__ import annotations

import importlib
import os
import pickle
import re
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError, first_line
from .load import Model, load_model

_FACTORY = re.compile(r"^(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?P<function>[A-Za-z_]\w*)$")
_DIMS = re.compile(r"^\d+(?:x\d+)*$")

Shape = tuple[int, ...]


@dataclass
class ResolvedModel:
    model: Model
    module: "object | None"  # the nn.Module for a PyTorch factory, None for an .onnx file
    onnx_path: Path


def parse_input_shape(text: str) -> Shape | dict[str, Shape]:
    """`1x3x224x224` → (1, 3, 224, 224); `a:1x3x32x32,b:1x8` → {"a": (1, 3, 32, 32), "b": (1, 8)}."""
    bad = UsageError(f"--input-shape '{text}': expected dims like 1x3x224x224, or "
                     "name:1x3x224x224[,name2:1x8] for several inputs")
    text = text.strip().lower().replace(" ", "")
    if not text:
        raise bad
    if ":" not in text:
        if not _DIMS.match(text):
            raise bad
        return _dims(text, bad)
    shapes: dict[str, Shape] = {}
    for part in text.split(","):
        name, sep, dims = part.rpartition(":")
        if not sep or not name or not _DIMS.match(dims) or name in shapes:
            raise bad
        shapes[name] = _dims(dims, bad)
    return shapes


def _dims(text: str, bad: UsageError) -> Shape:
    dims = tuple(int(d) for d in text.split("x"))
    if any(d <= 0 for d in dims):
        raise bad
    return dims


def resolve_model(spec: str, input_shape: str | None = None, weights: str | None = None,
                  workdir: str | os.PathLike | None = None) -> ResolvedModel:
    """Load MODEL. A factory is imported, called, given `weights`, and exported to
    `workdir/<function>.onnx` (workdir is required for factories)."""
    shapes = parse_input_shape(input_shape) if input_shape else None
    path = Path(spec)
    match = _FACTORY.match(spec)
    if match and not path.exists():
        if workdir is None:
            raise ValueError("resolve_model needs a workdir to export a PyTorch factory")
        return _resolve_factory(spec, match["module"], match["function"], shapes, weights, Path(workdir))
    if weights:
        raise UsageError(f"--weights '{weights}': only a PyTorch factory MODEL takes weights, "
                         f"'{spec}' is not one")
    if path.suffix.lower() != ".onnx" and not path.is_file():
        raise UsageError(f"MODEL '{spec}': neither an .onnx file nor a PyTorch factory "
                         "'package.module:function'")
    return ResolvedModel(model=load_model(path, _onnx_input_shapes(path, shapes)), module=None,
                         onnx_path=path)


def _onnx_input_shapes(path: Path, shapes) -> dict[str, Shape] | None:
    """A bare shape names the model's only input; with several inputs they must be named."""
    if shapes is None or isinstance(shapes, Mapping):
        return shapes
    try:
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
    except Exception:
        return {"input": shapes}  # unreadable: load_model reports why
    inits = {t.name for t in proto.graph.initializer}
    inputs = [i.name for i in proto.graph.input if i.name not in inits]
    if len(inputs) > 1:
        raise UsageError(f"--input-shape: {path} has inputs {', '.join(inputs)}; name each, "
                         f"e.g. {inputs[0]}:1x3x224x224,{inputs[1]}:...")
    return {inputs[0] if inputs else "input": shapes}


def _resolve_factory(spec, module_name, function, shapes, weights, workdir) -> ResolvedModel:
    import torch
    from torch import nn

    from .. import zoo
    from .export import export_module

    fn = _import_factory(spec, module_name, function)
    try:
        module = fn()
    except UsageError:
        raise
    except Exception as e:
        raise UsageError(f"MODEL '{spec}': the factory raised {type(e).__name__}: {first_line(e)}") from None
    if not isinstance(module, nn.Module):
        raise UsageError(f"MODEL '{spec}': the factory returned {type(module).__name__}, not a torch nn.Module")
    if weights:
        _load_weights(module, Path(weights), spec, torch)
    module.eval()
    if shapes is None:
        name = zoo.find(fn)
        if name is None:
            raise UsageError(f"MODEL '{spec}': a PyTorch factory needs --input-shape (e.g. 1x3x224x224)")
        shapes = zoo.input_shape(name)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        onnx_path = export_module(module, shapes, workdir / f"{function}.onnx")
    except UsageError as e:
        raise UsageError(f"MODEL '{spec}' (--input-shape {_shape_text(shapes)}): {e}") from None
    return ResolvedModel(model=load_model(onnx_path), module=module, onnx_path=onnx_path)


def _import_factory(spec: str, module_name: str, function: str):
    # a user's own package in the current folder, as `python -m` would see it
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        mod = importlib.import_module(module_name)
    except Exception as e:
        raise UsageError(f"MODEL '{spec}': cannot import '{module_name}' "
                         f"({type(e).__name__}: {first_line(e)})") from None
    finally:
        if added:
            sys.path.remove(cwd)
    fn = getattr(mod, function, None)
    if fn is None:
        raise UsageError(f"MODEL '{spec}': module '{module_name}' has no '{function}'")
    if not callable(fn):
        raise UsageError(f"MODEL '{spec}': '{function}' in '{module_name}' is not callable")
    return fn


def _load_weights(module, path: Path, spec: str, torch) -> None:
    if not path.is_file():
        raise UsageError(f"--weights '{path}': no such file")
    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols before refusing: the error line says it all
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # weights_only refuses any pickle that would import or call something
        raise UsageError(f"{path}: refused: not a plain tensor file ({_unpickler_reason(e)})") from None
    except Exception as e:
        raise UsageError(f"{path}: not a readable PyTorch weights file ({type(e).__name__}: "
                         f"{first_line(e)})") from None
    state = _state_dict(obj)
    if state is None:
        raise UsageError(f"{path}: holds a {type(obj).__name__}, not a state dict of tensors")
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    problems = []
    if missing:
        problems.append(f"missing {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected {_few(unexpected)}")
    if wrong:
        problems.append(f"shape mismatch {_few(wrong)}")
    if problems:
        raise UsageError(f"{path}: does not match MODEL '{spec}': {'; '.join(problems)}")
    module.load_state_dict(state, strict=True)


def _state_dict(obj) -> dict | None:
    """A state dict, or one under the usual checkpoint keys ("state_dict", "model")."""
    import torch

    if isinstance(obj, Mapping):
        if obj and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
            return dict(obj)
        for key in ("state_dict", "model", "model_state_dict"):
            if key in obj:
                return _state_dict(obj[key])
    return None


def _unpickler_reason(e: BaseException) -> str:
    text = str(e)
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return f"loading it would run code: it references {found[1]}"
    found = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    return f"weights_only=True rejected it: {found[1].strip()}" if found else "weights_only=True rejected it"


def _few(items: list[str], n: int = 3) -> str:
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def _shape_text(shapes) -> str:
    if isinstance(shapes, Mapping):
        return ",".join(f"{k}:{'x'.join(map(str, v))}" for k, v in shapes.items())
    return "x".join(map(str, shapes))

