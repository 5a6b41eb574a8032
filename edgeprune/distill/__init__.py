"""Short distillation of a pruned ONNX model from the dense one (`--finetune-steps N`).

The pruned graph runs in PyTorch (`importance.torch_graph.TorchGraph`, the interpreter
Taylor importance differentiates through), its trainable initializers — Conv, ConvTranspose,
Gemm and MatMul weights and biases, BatchNormalization scale and shift, PRelu slopes — take
N AdamW steps on the calibration data, and the trained values are written back into the same
initializers: same names, shapes and dtypes, no node added, nothing masked. BN running
statistics stay as recovery left them (a few hundred samples estimate a batch's moments
worse than recovery's matched ones), so every step trains the inference graph itself.

The loss follows what each output is (`edgeprune.outputs`): the KL divergence to the dense
model's softened class scores (temperature T, scaled by T², as `finetune.py` does for a
PyTorch module) where an output has a class axis, else the normalised MSE to the dense
output, ‖Δy‖² / ‖y‖². The dense outputs are computed once, by ONNX Runtime.

What it returns is judged on the calibration data it trained on: if the loss there did not
fall, the model given is returned unchanged (and the result says so), so the stage never
ships something worse by its own measure. Held-out fidelity is the pipeline's business.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from ..errors import UsageError
from ..frontend.load import Model
from ..outputs import CLASSES, kind_of
from ..recover.finetune import distillation_loss
from ..recover.recover import single_threaded_torch

# (op type, input positions) whose float initializers are trained
TRAINED_INPUTS = {"Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (1, 2), "MatMul": (0, 1),
                  "BatchNormalization": (1, 2), "PRelu": (1,)}


@dataclass(frozen=True)
class DistillOptions:
    steps: int = 0
    batch_size: int = 32
    lr: float = 1e-4
    temperature: float = 4.0
    weight_decay: float = 0.0
    seed: int = 0


@dataclass
class Distilled:
    model: Model
    steps: int
    kept: bool                          # True: the trained weights are in `model`
    loss_before: float                  # mean loss on the calibration data, before and after
    loss_after: float
    losses: list[float] = field(default_factory=list)   # per step
    trained: list[str] = field(default_factory=list)    # initializer names


def check_steps(value) -> int:
    """N as the contract takes it: an integer >= 0 (a one-line usage error otherwise)."""
    if isinstance(value, bool):
        raise UsageError(f"--finetune-steps must be an integer >= 0, got {value!r}")
    try:
        n = int(value)
        exact = float(value) == n
    except (TypeError, ValueError):
        exact = False
    if not exact or n < 0:
        raise UsageError(f"--finetune-steps must be an integer >= 0, got {value!r}")
    return n


def trainable(proto: onnx.ModelProto) -> list[str]:
    """The float initializers the distillation trains, in graph order."""
    floats = {t.name for t in proto.graph.initializer
              if numpy_helper.to_array(t).dtype.kind == "f"}
    names = []
    for node in proto.graph.node:
        for i in TRAINED_INPUTS.get(node.op_type, ()) if node.domain in ("", "ai.onnx") else ():
            if i < len(node.input) and node.input[i] in floats and node.input[i] not in names:
                names.append(node.input[i])
    return names


def distill(dense: Model, pruned: Model, data: Mapping[str, np.ndarray],
            options: DistillOptions = DistillOptions()) -> Distilled:
    """`pruned` trained for `options.steps` steps to follow `dense` on `data` (input name
    -> samples on axis 0, unlabelled)."""
    from ..fidelity import outputs
    from ..importance.torch_graph import TorchGraph

    names = list(pruned.input_shapes)
    missing = [n for n in names if n not in data]
    if missing:
        raise UsageError(f"distillation data lacks input(s) {missing}")
    n = len(data[names[0]])
    if n == 0:
        raise UsageError("distillation needs at least one calibration sample")
    o = options
    x = {k: torch.from_numpy(np.ascontiguousarray(data[k], dtype=np.float32)) for k in names}
    teacher = [torch.from_numpy(np.asarray(t, dtype=np.float32)) for t in outputs(dense, {k: data[k] for k in names})]
    graph = TorchGraph(pruned.proto)
    trained = trainable(pruned.proto)
    params = [graph.params[name] for name in trained]

    def loss_on(idx: torch.Tensor) -> torch.Tensor:
        outs = graph({k: v[idx] for k, v in x.items()})
        return _loss(outs, [t[idx] for t in teacher], o.temperature)

    def mean_loss() -> float:
        with torch.no_grad():
            total = sum(float(loss_on(idx)) * len(idx) for idx in torch.arange(n).split(o.batch_size))
        return total / n

    with single_threaded_torch(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(o.seed)
        before = mean_loss()
        if o.steps == 0 or not params:
            return Distilled(pruned, 0, False, before, before, [], trained)
        for p in params:
            p.requires_grad_(True)
        opt = torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=o.steps)
        batches = _batches(n, o.batch_size, o.steps)
        losses = []
        for idx in batches:
            loss = loss_on(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        for p in params:
            p.requires_grad_(False)
        after = mean_loss()
    if not after < before:
        return Distilled(pruned, o.steps, False, before, after, losses, trained)
    return Distilled(_written(pruned, graph, trained), o.steps, True, before, after, losses, trained)


def _batches(n: int, size: int, steps: int) -> list[torch.Tensor]:
    """`steps` batches of up to `size` samples, epoch after epoch of seeded permutations."""
    out: list[torch.Tensor] = []
    while len(out) < steps:
        out += list(torch.randperm(n).split(min(size, n)))
    return out[:steps]


def _loss(outs: list[torch.Tensor], teacher: list[torch.Tensor], temperature: float) -> torch.Tensor:
    total = None
    for y, t in zip(outs, teacher):
        if not (isinstance(y, torch.Tensor) and y.is_floating_point() and y.dim() > 0):
            continue
        if kind_of(tuple(t.shape)).kind == CLASSES:
            term = distillation_loss(y.movedim(1, -1).reshape(-1, y.shape[1]),
                                     t.movedim(1, -1).reshape(-1, t.shape[1]), temperature)
        else:
            flat_y, flat_t = y.reshape(len(y), -1), t.reshape(len(t), -1)
            term = (((flat_y - flat_t) ** 2).sum(1) / (flat_t ** 2).sum(1).clamp_min(1e-12)).mean()
        total = term if total is None else total + term
    if total is None:
        raise UsageError("distillation: the model has no floating-point output to follow")
    return total


def _written(pruned: Model, graph, trained: list[str]) -> Model:
    proto = onnx.ModelProto()
    proto.CopyFrom(pruned.proto)
    inits = {t.name: t for t in proto.graph.initializer}
    for name in trained:
        old = numpy_helper.to_array(inits[name])
        new = graph.params[name].detach().numpy().astype(old.dtype).reshape(old.shape)
        inits[name].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(new), name))
    return pruned.replace(proto)
