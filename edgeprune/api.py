"""The Python API: `edgeprune.compile(...)`, the `compile` command for PyTorch users.

    import edgeprune
    result = edgeprune.compile(my_module, input_shape=(1, 3, 224, 224), target="host",
                               budget="0.5x", data={"input": images}, quantize="int8",
                               output="out/model", min_fidelity=0.9)
    print(result.report, result.manifest["latency_ms"])

Errors are the command's typed errors (edgeprune.errors): UsageError, InfeasibleBudget,
GateFailed (the artifact is built; `e` says which gate and value), DeviceError.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from .pipeline import CompileRequest, CompileResult, compile_model


def _shape_text(shape) -> str | None:
    if shape is None or isinstance(shape, str):
        return shape
    if isinstance(shape, Mapping):
        return ",".join(f"{k}:{_shape_text(v)}" for k, v in shape.items())
    return "x".join(str(int(d)) for d in shape)


def _budgets(budget) -> tuple[str, ...]:
    if budget is None:
        return ()
    return (budget,) if isinstance(budget, str) else tuple(budget)


def compile(model: Any, target: str = "host", budget: str | Sequence[str] = "0.5x", *,
            output: str | os.PathLike, input_shape: str | Sequence[int] | Mapping | None = None,
            weights: str | os.PathLike | None = None,
            data: str | os.PathLike | Mapping[str, np.ndarray] | np.ndarray | None = None,
            quantize: str = "none", calibration: str = "percentile", backend: str = "ort", criterion: str | None = None,
            sweep: Sequence[str] = (), lut: str | os.PathLike | None = None, tuning_trials: int = 0,
            finetune_steps: int = 0,
            max_latency: float | None = None, max_energy: float | None = None,
            min_fidelity: float | None = None, max_size: float | None = None,
            quiet: bool = True) -> CompileResult:
    """Compile `model` — an `nn.Module` (with `input_shape`), an .onnx path, or a factory
    "package.module:function" — for `target` within `budget`, into the folder `output`.
    `data` is an .npz or image folder path, a {input name: samples} mapping, or one array of
    samples for a single-input model. Returns the manifest, report path and gate results."""
    module = None
    spec = None
    try:
        from torch import nn

        if isinstance(model, nn.Module):
            module = model
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if module is None:
        spec = os.fspath(model)
    arrays = None
    data_path = None
    if isinstance(data, np.ndarray):
        arrays = {"__single__": data}
    elif isinstance(data, Mapping):
        arrays = dict(data)
    elif data is not None:
        data_path = os.fspath(data)
    req = CompileRequest(
        output=os.fspath(output), model=spec, module=module, input_shape=_shape_text(input_shape),
        weights=None if weights is None else os.fspath(weights), target=target,
        budget=_budgets(budget), sweep=tuple(sweep), backend=backend, quantize=quantize, calibration=calibration,
        data=data_path, data_arrays=arrays, criterion=criterion,
        lut=None if lut is None else os.fspath(lut), tuning_trials=tuning_trials,
        finetune_steps=finetune_steps, quiet=quiet,
        gates={"max_latency": max_latency, "max_energy": max_energy, "min_fidelity": min_fidelity,
               "max_size": max_size})
    return compile_model(req)
