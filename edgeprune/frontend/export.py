"""PyTorch → ONNX with the names and BatchNorm layers that pruning needs.

The classic TorchScript exporter (`dynamo=False`) keeps module paths in names: initializer
`layer1.0.conv1.weight`, node `/layer1/layer1.0/conv1/Conv`. In its default EVAL mode it
also folds every BatchNorm into the preceding Conv, which loses the BN scales (the `bn`
criterion, BN re-estimation) and renames the weights. `TrainingMode.PRESERVE` on a module
already in eval mode skips that fold and still exports inference BatchNormalization
(training_mode=0, one output); constant folding of shape arithmetic still runs.

A Linear applied to a 3-D tensor (transformers) exports as MatMul with the weight folded to
its transpose under a generated name (`onnx::MatMul_194`); such a weight is renamed
`<module>.weight_t` (e.g. `blocks.0.attn.qkv.weight_t`) so it can be traced to its module.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import onnx
import torch
from torch import nn

from ..errors import UsageError
from .load import save_model

DEFAULT_OPSET = 17

Shape = tuple[int, ...]


def export_module(module: nn.Module, input_shapes: Shape | Sequence[Shape] | Mapping[str, Shape],
                  path: str | os.PathLike, opset: int = DEFAULT_OPSET,
                  input_names: Sequence[str] | None = None,
                  output_names: Sequence[str] | None = None) -> Path:
    """Export `module` (traced on zeros of the given static shapes) to `path`, atomically.

    `input_shapes` is one shape, a list of shapes (inputs named "input", "input_1", …
    unless `input_names` is given) or a mapping name → shape. Outputs are named "output"
    ("output_1", … for more). The same module gives the same bytes.
    """
    names, shapes = _inputs(input_shapes, input_names)
    args = tuple(torch.zeros(s, dtype=torch.float32) for s in shapes)
    # restore each submodule's own mode afterwards (a user may keep some frozen in eval)
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.no_grad():
            outputs = module(*args)
        n_out = len(outputs) if isinstance(outputs, (tuple, list)) else 1
        out_names = list(output_names) if output_names else _numbered("output", n_out)
        buf = io.BytesIO()
        with warnings.catch_warnings():
            # the exporter warns that it is the legacy one and that PRESERVE mode would
            # rather not constant-fold; both are chosen on purpose (see module docstring)
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, buf, dynamo=False, opset_version=opset,
                              input_names=names, output_names=out_names,
                              training=torch.onnx.TrainingMode.PRESERVE,
                              do_constant_folding=True)
    except UsageError:
        raise
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"{type(module).__name__}: cannot export to ONNX with input shapes "
                         f"{_shapes_str(shapes)}: {first}") from None
    finally:
        for m, training in modes:
            m.training = training
    proto = onnx.load_from_string(buf.getvalue())
    _name_transposed_weights(proto, module)
    path = Path(path)
    save_model(proto, path)
    return path


def _name_transposed_weights(proto: onnx.ModelProto, module: nn.Module) -> None:
    """Rename generated 2-D initializers that are exactly the transpose of one parameter."""
    from onnx import numpy_helper

    by_shape: dict[tuple[int, ...], list[tuple[str, torch.Tensor]]] = {}
    for name, p in module.state_dict().items():
        if p.dim() == 2 and name.endswith(".weight"):
            by_shape.setdefault(tuple(p.shape[::-1]), []).append((name, p))
    taken = {t.name for t in proto.graph.initializer}
    renames = {}
    for t in proto.graph.initializer:
        if not t.name.startswith("onnx::") or len(t.dims) != 2:
            continue
        value = numpy_helper.to_array(t)
        matches = [n for n, p in by_shape.get(tuple(t.dims), [])
                   if p.dtype == torch.float32 and (p.detach().numpy().T == value).all()]
        new = f"{matches[0]}_t" if len(matches) == 1 else None
        if new and new not in taken:
            renames[t.name] = new
            taken.add(new)
            t.name = new
    if renames:
        for node in proto.graph.node:
            for k, name in enumerate(node.input):
                if name in renames:
                    node.input[k] = renames[name]


def _inputs(input_shapes, input_names) -> tuple[list[str], list[Shape]]:
    if isinstance(input_shapes, Mapping):
        names, shapes = list(input_shapes), [tuple(int(d) for d in s) for s in input_shapes.values()]
    elif input_shapes and all(isinstance(d, int) for d in input_shapes):
        shapes = [tuple(input_shapes)]
        names = list(input_names) if input_names else ["input"]
    else:
        shapes = [tuple(int(d) for d in s) for s in input_shapes]
        names = list(input_names) if input_names else _numbered("input", len(shapes))
    if len(names) != len(shapes):
        raise UsageError(f"{len(names)} input names for {len(shapes)} input shapes")
    for s in shapes:
        if not s or any(d <= 0 for d in s):
            raise UsageError(f"input shape {_shapes_str([s])} must have positive dims")
    return names, shapes


def _numbered(base: str, n: int) -> list[str]:
    return [base] if n == 1 else [base if k == 0 else f"{base}_{k}" for k in range(n)]


def _shapes_str(shapes) -> str:
    return ", ".join("x".join(map(str, s)) for s in shapes)
