"""Fine-tune a pruned PyTorch module with knowledge distillation from the dense one.

The student learns the teacher's softened outputs (KL divergence at a temperature, scaled
by T² so the gradient size does not depend on T); when labels are given, a share `alpha`
of the loss stays on them. Then `export` writes the result to ONNX for the compiler.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError
from .recover import single_threaded_torch


@dataclass(frozen=True)
class FinetuneOptions:
    epochs: int = 3
    lr: float = 1e-3
    batch_size: int = 64
    temperature: float = 4.0
    alpha: float = 0.5        # weight of the label loss when labels are given
    weight_decay: float = 0.0
    seed: int = 0


@dataclass
class FinetuneResult:
    module: nn.Module
    losses: list[float] = field(default_factory=list)   # mean loss per epoch


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    t = temperature
    return F.kl_div(F.log_softmax(student / t, dim=1), F.log_softmax(teacher / t, dim=1),
                    reduction="batchmean", log_target=True) * (t * t)


def finetune(student: nn.Module, teacher: nn.Module, inputs: np.ndarray | torch.Tensor,
             labels: np.ndarray | torch.Tensor | None = None,
             options: FinetuneOptions = FinetuneOptions()) -> FinetuneResult:
    """Train `student` (in place) to follow `teacher` on `inputs` (N, ...) and, if given,
    the integer `labels` (N,). Returns the student in eval mode and the loss per epoch.
    Deterministic for a seed: the run uses private RNG state and one thread (small
    convolutions on a shared machine ran several times faster on one thread than on two)."""
    x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32)
    y = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.long)
    if len(x) == 0:
        raise UsageError("fine-tuning needs at least one input sample")
    if y is not None and len(y) != len(x):
        raise UsageError(f"{len(x)} inputs but {len(y)} labels")
    o = options
    teacher.eval()
    with torch.no_grad():
        soft = torch.cat([teacher(x[i:i + o.batch_size]) for i in range(0, len(x), o.batch_size)])
    losses = []
    with single_threaded_torch(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(o.seed)
        opt = torch.optim.AdamW(student.parameters(), lr=o.lr, weight_decay=o.weight_decay)
        steps = o.epochs * ((len(x) + o.batch_size - 1) // o.batch_size)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
        student.train()
        for _ in range(o.epochs):
            total, seen = 0.0, 0
            for idx in torch.randperm(len(x)).split(o.batch_size):
                out = student(x[idx])
                loss = distillation_loss(out, soft[idx], o.temperature)
                if y is not None:
                    loss = (1 - o.alpha) * loss + o.alpha * F.cross_entropy(out, y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(idx)
                seen += len(idx)
            losses.append(total / seen)
    student.eval()
    return FinetuneResult(student, losses)


def export(module: nn.Module, input_shape: tuple[int, ...], path: str | os.PathLike) -> Path:
    """Re-export the fine-tuned module to ONNX (same exporter settings as the frontend)."""
    from ..frontend.export import export_module

    return export_module(module, input_shape, path)
