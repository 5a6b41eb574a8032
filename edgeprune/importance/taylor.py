"""Data-driven first-order Taylor importance (Molchanov et al., CVPR 2019).

The loss change from removing a channel is estimated to first order by the gradient times
the parameters that produce it: |Σ(γ·∂L/∂γ + β·∂L/∂β)| over its BatchNorm where it has one,
else |Σ w·∂L/∂w| over the weights and bias that produce it. Per member (one BN, one
producing layer) and batch; a channel's score is the sum over its coupled members and the
calibration batches.

Gradients come from the user's PyTorch module when it is given and its parameters carry the
ONNX initializer names (the exporter keeps module paths: "layer1.0.bn1.weight"), else from
the ONNX graph run in PyTorch (`torch_graph`).

The loss: cross-entropy to the labels when given; without labels, the KL divergence to the
dense model's own *top-1 predictions* (cross-entropy to its arg-max along the class axis).
The KL divergence to its full soft outputs would be the more literal choice, but at the
dense model it is at its minimum: its gradient is exactly zero and every score would be 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UsageError
from ..frontend.load import Model
from ..graph.groups import Analysis
from ..graph.types import OUT, THROUGH

DEFAULT_BATCH = 16
DEFAULT_SAMPLES = 256
_BN = ("bn_scale", "bn_bias")
_PRODUCER = ("weight", "bias")


@dataclass(frozen=True)
class _Use:
    """One sliced parameter that scores a group's channels."""

    node: str          # the member: a BN's scale and shift are one change, summed before |.|
    tensor: str
    axis: int
    flat: np.ndarray   # flat channel index at each position along `axis`


def _uses(analysis: Analysis) -> list[_Use]:
    """BN scale and shift where a group has them, else the producing weights and biases."""
    bn_groups = {g.id for g in analysis.groups
                 if any(m.param in _BN and m.role == THROUGH for m in g.members)}
    gid_of_flat = np.empty(sum(g.channels for g in analysis.groups), dtype=object)
    for g in analysis.groups:
        gid_of_flat[analysis.offsets[g.id]:analysis.offsets[g.id] + g.channels] = g.id
    uses, seen = [], set()
    for s in analysis.slices:
        m = s.member
        flat = analysis.flat_of[s.ids]
        gids = set(gid_of_flat[flat].tolist())
        if not gids:
            continue
        with_bn = gids <= bn_groups
        wanted = (m.param in _BN) if with_bn else (m.role == OUT and m.param in _PRODUCER)
        key = (s.tensor, s.axis)
        if wanted and m.role in (OUT, THROUGH) and key not in seen:
            seen.add(key)
            uses.append(_Use(m.node, s.tensor, s.axis, flat))
    return uses


def _batches(data: Mapping[str, np.ndarray], names: list[str], batch: int, limit: int):
    missing = [n for n in names if n not in data]
    if missing:
        raise UsageError(f"--data has no array for model input '{missing[0]}' "
                         f"(arrays: {', '.join(sorted(data)) or 'none'})")
    n = min(len(data[names[0]]), limit)
    if n == 0:
        raise UsageError("--data holds no samples")
    for start in range(0, n, batch):
        yield start, {k: torch.from_numpy(np.ascontiguousarray(data[k][start:start + batch], dtype=np.float32))
                      for k in names}


def _loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if logits.dim() < 2 or logits.shape[1] < 2:
        raise UsageError(f"taylor: the model's first output has shape {list(logits.shape)}; "
                         f"it needs a class axis (axis 1) to compare predictions")
    return F.cross_entropy(logits, target, reduction="sum")


def _module_params(module, names: set[str]) -> dict[str, torch.Tensor] | None:
    """The module's parameters by ONNX initializer name, or None if any is missing."""
    if module is None:
        return None
    params = dict(module.named_parameters())
    if not names <= set(params):
        return None
    return {n: params[n] for n in names}


def taylor_scores(model: Model, analysis: Analysis, data: Mapping[str, np.ndarray], module=None,
                  labels: np.ndarray | None = None, batch_size: int = DEFAULT_BATCH,
                  max_samples: int = DEFAULT_SAMPLES) -> dict[str, np.ndarray]:
    """Per group, per channel: Σ over batches of |first-order loss change| of removing it."""
    if data is None:
        raise UsageError("--criterion taylor needs calibration data (--data)")
    uses = _uses(analysis)
    names = {u.tensor for u in uses}
    input_names = list(model.input_shapes)
    params = _module_params(module, names)
    was_training = None
    if params is not None:
        was_training = module.training
        module.eval()

        def forward(feeds):
            out = module(*(feeds[n] for n in input_names))
            return out[0] if isinstance(out, (tuple, list)) else out
    else:
        from .torch_graph import TorchGraph

        graph = TorchGraph(model.proto)
        params = {n: graph.params[n] for n in names}

        def forward(feeds):
            return graph(feeds)[0]
    saved = {n: p.requires_grad for n, p in params.items()}
    for p in params.values():
        p.requires_grad_(True)
    size = sum(g.channels for g in analysis.groups)
    total = np.zeros(size)
    try:
        for start, feeds in _batches(data, input_names, batch_size, max_samples):
            for p in params.values():
                p.grad = None
            logits = forward(feeds)
            if labels is not None:
                target = torch.from_numpy(np.asarray(labels[start:start + len(logits)], dtype=np.int64))
            else:
                target = logits.detach().argmax(dim=1)
            _loss(logits, target).backward()
            per_member: dict[str, np.ndarray] = {}
            for u in uses:
                p = params[u.tensor]
                if p.grad is None:
                    continue
                prod = (p.detach() * p.grad).double().numpy()
                per_pos = np.moveaxis(prod, u.axis, 0).reshape(prod.shape[u.axis], -1).sum(axis=1)
                np.add.at(per_member.setdefault(u.node, np.zeros(size)), u.flat, per_pos)
            for contribution in per_member.values():
                total += np.abs(contribution)
    finally:
        for n, p in params.items():
            p.requires_grad_(saved[n])
            p.grad = None
        if was_training is not None:
            module.train(was_training)
    return {g.id: total[analysis.offsets[g.id]:analysis.offsets[g.id] + g.channels].copy()
            for g in analysis.groups}
