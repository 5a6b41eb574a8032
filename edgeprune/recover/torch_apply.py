"""Apply a pruning plan to the user's PyTorch module: a physically smaller copy with the
same module and parameter names, so it can be fine-tuned in the user's own loop.

The plan was made on the ONNX export of the module, whose initializers carry the state
dict's names (`frontend.export` keeps them). Every sliced initializer must therefore be a
parameter or buffer of the module; each layer's size attributes (`out_channels`,
`num_features`, `in_features`, `groups` ...) are set from its new weight.
"""

from __future__ import annotations

import copy
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import UsageError
from ..graph.groups import Analysis


def apply_plan(module: nn.Module, analysis: Analysis, keep: Mapping[str, Sequence[int]]) -> nn.Module:
    """A pruned deep copy of `module` keeping, per group, the channels in `keep`."""
    mask = analysis.keep_mask(keep)
    _refuse_shape_fixups(analysis, mask)
    out = copy.deepcopy(module)
    state = dict(out.named_parameters()) | dict(out.named_buffers())
    sliced: dict[str, torch.Tensor] = {}
    for s in analysis.slices:
        kept = analysis.positions_kept(s.ids, mask)
        if kept.all():
            continue
        if s.tensor not in state:
            raise UsageError(f"the plan slices ONNX tensor '{s.tensor}' (node '{s.member.node}'), "
                             "which is not a parameter or buffer of the module")
        t = sliced.get(s.tensor, state[s.tensor].detach())
        if t.shape[s.axis] != len(s.ids):
            raise UsageError(f"parameter '{s.tensor}' has {t.shape[s.axis]} entries on axis {s.axis}, "
                             f"the ONNX model {len(s.ids)}: the plan is for another module")
        idx = torch.from_numpy(np.flatnonzero(kept))
        sliced[s.tensor] = torch.index_select(t, s.axis, idx).clone()
    touched: dict[str, nn.Module] = {}
    for name, value in sliced.items():
        owner_name, _, attr = name.rpartition(".")
        owner = out.get_submodule(owner_name)
        if attr in owner._parameters:
            old = owner._parameters[attr]
            owner._parameters[attr] = nn.Parameter(value, requires_grad=old.requires_grad)
        else:
            owner._buffers[attr] = value
        touched[owner_name] = owner
    for name, m in touched.items():
        _resize(name, m)
    return out


def _refuse_shape_fixups(analysis: Analysis, mask: np.ndarray) -> None:
    # Split sizes, Slice bounds and Reshape targets live in the module's Python code, which
    # a plan cannot rewrite; a conv's `groups` is an attribute and is fixed below.
    for f in analysis.fixups:
        if f.kind != "group" and not analysis.positions_kept(f.ids, mask).all():
            raise UsageError(f"the plan changes a channel count written in the module's code "
                             f"({f.kind} at ONNX node '{f.node}'); prune the ONNX model instead")


def _resize(name: str, m: nn.Module) -> None:
    if isinstance(m, nn.modules.conv._ConvNd):
        # weight is (out, in/groups, ...) or, transposed, (in, out/groups, ...); a grouped
        # conv loses whole groups, so the channels per group stay and `groups` shrinks
        w = m.weight
        if m.transposed:
            if m.groups > 1:
                m.groups = w.shape[0] // (m.in_channels // m.groups)
            m.in_channels, m.out_channels = w.shape[0], w.shape[1] * m.groups
        else:
            if m.groups > 1:
                m.groups = w.shape[0] // (m.out_channels // m.groups)
            m.out_channels, m.in_channels = w.shape[0], w.shape[1] * m.groups
    elif isinstance(m, nn.modules.batchnorm._NormBase):
        m.num_features = (m.weight if m.weight is not None else m.running_mean).shape[0]
    elif isinstance(m, nn.Linear):
        m.out_features, m.in_features = m.weight.shape
    elif isinstance(m, nn.LayerNorm):
        m.normalized_shape = (m.weight.shape[0],)
    elif isinstance(m, nn.GroupNorm):
        m.num_channels = m.weight.shape[0]
    else:
        raise UsageError(f"module '{name}' ({type(m).__name__}) had parameters sliced and edgeprune "
                         "does not know its size attributes")
