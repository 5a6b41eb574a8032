"""Torch-Pruning (PyPI `torch-pruning`) as the peer: its MetaPruner with global pruning over
the PyTorch module, MagnitudeImportance or TaylorImportance, at one pruning ratio.

The classifier (the module's last Linear) is left whole, as Torch-Pruning's examples do.
Channel counts are rounded to the device's channel step (`round_to`): without it the
pruned layers leave ONNX Runtime's fast NCHWc kernels (see shared FACTS.md) and the peer
would lose on latency for a reason that has nothing to do with its criterion.

Taylor scores need gradients on the parameters when the pruner steps. Without labels the
loss is the cross-entropy to the dense model's own top-1 predictions (the one edgeprune's
Taylor uses); it is computed once on the dense module and copied onto each fresh copy, so
every ratio tried ranks channels from the same gradients.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

CRITERIA = ("magnitude", "taylor")


def _classifier(module: nn.Module) -> list[nn.Module]:
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    return linears[-1:]


def dense_gradients(module: nn.Module, calib: np.ndarray, batch: int = 16) -> dict[str, torch.Tensor]:
    """Σ over calibration batches of ∂CE(module(x), argmax dense(x))/∂θ, per parameter name."""
    work = copy.deepcopy(module).eval()
    work.zero_grad()
    for start in range(0, len(calib), batch):
        x = torch.from_numpy(np.ascontiguousarray(calib[start:start + batch], dtype=np.float32))
        logits = work(x)
        target = logits.detach().argmax(1)
        nn.functional.cross_entropy(logits, target, reduction="sum").backward()
    return {n: p.grad.detach().clone() for n, p in work.named_parameters() if p.grad is not None}


def tp_prune(module: nn.Module, input_shape: tuple[int, ...], ratio: float, criterion: str, round_to: int,
             grads: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """A pruned copy of `module`: Torch-Pruning removes `ratio` of the channels globally."""
    import torch_pruning as tp

    if criterion not in CRITERIA:
        raise ValueError(f"criterion {criterion!r}: expected one of {CRITERIA}")
    work = copy.deepcopy(module).eval()
    if criterion == "taylor":
        if grads is None:
            raise ValueError("taylor needs the dense gradients (dense_gradients)")
        for n, p in work.named_parameters():
            p.grad = grads[n].clone() if n in grads else None
        importance = tp.importance.TaylorImportance()
    else:
        importance = tp.importance.MagnitudeImportance(p=2)
    pruner = tp.pruner.MetaPruner(work, torch.zeros(input_shape), importance=importance,
                                  pruning_ratio=float(ratio), global_pruning=True,
                                  ignored_layers=_classifier(work), round_to=round_to)
    pruner.step()
    work.zero_grad(set_to_none=True)
    return work


def recalibrate_bn(module: nn.Module, calib: np.ndarray, batch: int = 32) -> nn.Module:
    """A copy of `module` whose BatchNorm statistics are re-estimated on `calib` (a plain
    average over the batches; the other layers stay in eval mode, dropout off): the
    standard post-training repair after pruning, and all a pruned network gets without
    reconstruction or training."""
    work = copy.deepcopy(module).eval()
    norms = [m for m in work.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    with torch.no_grad():
        for start in range(0, len(calib), batch):
            work(torch.from_numpy(np.ascontiguousarray(calib[start:start + batch], dtype=np.float32)))
    return work.eval()


def tp_model(module: nn.Module, input_shape: tuple[int, ...], path: Path):
    """Export a (pruned) module with edgeprune's exporter and load it as the others are."""
    from edgeprune.frontend.export import export_module
    from edgeprune.frontend.load import load_model

    return load_model(export_module(module, input_shape, path))
