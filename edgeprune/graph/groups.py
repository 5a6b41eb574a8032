"""Channel dependency analysis: trace channel ids through the graph, then assemble groups."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from ..errors import UsageError
from ..frontend.load import Model
from .context import ChannelInfo, Context, UnionFind
from .cost import count_macs, count_params
from .rules import MULTI_AXIS_OPS, RULES, no_rule
from .types import OUT, SHAPE, THROUGH, Fixup, Group, Member, Slice

# Fewer channels than this are never worth a group of their own (and 1 would vanish).
MIN_CHANNELS = 2


@dataclass
class Analysis:
    """The Groups artifact: every group, plus what the rewrite needs to apply a choice."""

    model_sha256: str
    groups: list[Group]
    slices: list[Slice]
    fixups: list[Fixup]
    tensors: dict[str, ChannelInfo]     # activation tensor -> channel axis and ids
    flat_of: np.ndarray                 # channel id -> flat index (group offset + channel)
    offsets: dict[str, int]             # group id -> offset of its channels in flat order
    macs: int = 0
    params: int = 0
    # node -> (input tensor or "" if untraced, output tensor, c_in, c_out) for timed layers
    layers: dict[str, tuple[str, str, int, int]] = field(default_factory=dict)
    _by_id: dict[str, Group] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self._by_id = {g.id: g for g in self.groups}

    def group(self, gid: str) -> Group:
        try:
            return self._by_id[gid]
        except KeyError:
            raise UsageError(f"no channel group '{gid}' in this model") from None

    def prunable(self) -> list[Group]:
        return [g for g in self.groups if g.prunable]

    def keep_mask(self, keep: Mapping[str, Sequence[int]]) -> np.ndarray:
        """Flat boolean mask over all channels of all groups: True where kept."""
        size = sum(g.channels for g in self.groups)
        mask = np.ones(size, dtype=bool)
        for gid, kept in keep.items():
            g = self.group(gid)
            if not g.prunable and len(kept) != g.channels:
                raise UsageError(f"group {gid} ({g.name}) is frozen: {g.frozen}")
            kept = np.asarray(sorted(set(int(k) for k in kept)), dtype=np.int64)
            if len(kept) == 0:
                raise UsageError(f"group {gid} ({g.name}) would keep no channel")
            if kept.min() < 0 or kept.max() >= g.channels:
                raise UsageError(f"group {gid} ({g.name}) has {g.channels} channels; "
                                 f"kept index {int(kept.max())} is out of range")
            off = self.offsets[gid]
            mask[off:off + g.channels] = False
            mask[off + kept] = True
        return mask

    def positions_kept(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return mask[self.flat_of[ids]]

    def tensor_channels(self, kept_fraction: Mapping[str, float] | None = None) -> dict[str, float]:
        """Channel count of every traced activation tensor when each group keeps the given
        fraction of its channels (exact when channels are equally represented)."""
        frac = np.ones(sum(g.channels for g in self.groups))
        for gid, f in (kept_fraction or {}).items():
            off = self.offsets[gid]
            frac[off:off + self.group(gid).channels] = f
        return {name: float(frac[self.flat_of[info.ids]].sum()) for name, info in self.tensors.items()}

    def layer_channels(self, kept_counts: Mapping[str, int]) -> dict[str, tuple[int, int]]:
        """(c_in, c_out) of every Conv/ConvTranspose/Gemm/MatMul node when each group keeps
        `kept_counts[gid]` channels (others whole). Untraced tensors keep their size."""
        fractions = {gid: k / self.group(gid).channels for gid, k in kept_counts.items()}
        counts = self.tensor_channels(fractions)
        out = {}
        for name, (x, y, c_in, c_out) in self.layers.items():
            ci = counts.get(x, c_in) if x else c_in
            co = counts.get(y, c_out)
            out[name] = (int(round(ci)), int(round(co)))
        return out

    def to_json(self) -> dict:
        return {
            "model_sha256": self.model_sha256,
            "groups": [g.to_json() for g in self.groups],
            "prunable_groups": len(self.prunable()),
            "frozen_groups": len(self.groups) - len(self.prunable()),
            "macs": self.macs,
            "params": self.params,
        }


def analyze(model: Model) -> Analysis:
    proto = model.proto
    ctx = Context(proto)
    for node in proto.graph.node:
        if node.domain not in ("", "ai.onnx"):
            ctx.freeze_inputs(node, f"{node.op_type} '{node.name}' is a custom-domain op ({node.domain})")
            continue
        if node.op_type not in MULTI_AXIS_OPS and any(
                ctx.get(n) is not None and ctx.get(n).multi for n in node.input):
            ctx.freeze_inputs(node, f"{node.op_type} '{node.name}' meets channels split into attention heads")
            continue
        RULES.get(node.op_type, no_rule)(ctx, node)
    for out in proto.graph.output:
        info = ctx.get(out.name)
        if info is not None:
            ctx.freeze(info.ids, f"model output '{out.name}'")
    analysis = _assemble(ctx, model.sha256)
    analysis.macs = count_macs(proto)
    analysis.params = count_params(proto)
    analysis.layers = _layers(proto, ctx)
    return analysis


def _layers(proto, ctx: Context) -> dict[str, tuple[str, str, int, int]]:
    """node -> (input tensor, output tensor, c_in, c_out) for layers a LUT times."""
    layers = {}
    for node in proto.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            continue
        if node.op_type == "MatMul" and not ctx.is_const(node.input[1]):
            continue  # activation x activation (attention): no weight to time per channel
        x, y = node.input[0], node.output[0]
        xs, ys = ctx.shape(x), ctx.shape(y)
        if xs is None or ys is None:
            continue
        xi, yi = ctx.analysis_info(x), ctx.analysis_info(y)
        c_in = len(xi.ids) if xi else (xs[1] if node.op_type in ("Conv", "ConvTranspose", "Gemm") else xs[-1])
        c_out = len(yi.ids) if yi else (ys[1] if node.op_type != "MatMul" else ys[-1])
        layers[node.name] = (x if xi else "", y, int(c_in), int(c_out))
    return layers


def _assemble(ctx: Context, sha256: str) -> Analysis:
    n_ids = len(ctx.block_of)
    cls = ctx.ids.roots() if n_ids else np.zeros(0, dtype=np.int64)
    block_of = np.asarray(ctx.block_of, dtype=np.int64)
    block_root = ctx.blocks_uf.roots() if ctx.blocks else np.zeros(0, dtype=np.int64)
    group_root_of_id = block_root[block_of] if n_ids else np.zeros(0, dtype=np.int64)

    # Group order and channel order: the order producers appear in the graph.
    roots_in_order: list[int] = []
    channels_of_root: dict[int, list[int]] = {}
    chan_index: dict[int, int] = {}
    for b, block in enumerate(ctx.blocks):
        r = int(block_root[b])
        if r not in channels_of_root:
            channels_of_root[r] = []
            roots_in_order.append(r)
        lst = channels_of_root[r]
        for i in range(block.start, block.start + block.size):
            c = int(cls[i])
            if c not in chan_index:
                chan_index[c] = len(lst)
                lst.append(c)

    gid_of_root = {r: f"g{k}" for k, r in enumerate(roots_in_order)}
    offsets, off = {}, 0
    for r in roots_in_order:
        offsets[gid_of_root[r]] = off
        off += len(channels_of_root[r])
    flat_of = np.fromiter((offsets[gid_of_root[int(group_root_of_id[i])]] + chan_index[int(cls[i])]
                           for i in range(n_ids)), dtype=np.int64, count=n_ids)

    reasons: dict[int, list[str]] = {}
    for ids, reason in ctx.frozen:
        for r in np.unique(group_root_of_id[ids]).tolist():
            lst = reasons.setdefault(int(r), [])
            if reason not in lst:
                lst.append(reason)

    members: dict[int, list[Member]] = {r: [] for r in roots_in_order}
    for s in ctx.slices:
        for r in np.unique(group_root_of_id[s.ids]).tolist():
            if s.member not in members[r]:
                members[r].append(s.member)
    for f in ctx.fixups:
        m = Member(f.node, _node_op(ctx, f.node), f.node, -1, SHAPE, f.kind)
        for r in np.unique(group_root_of_id[f.ids]).tolist():
            if m not in members[r]:
                members[r].append(m)

    atoms = _atoms(ctx, cls, chan_index, group_root_of_id)
    segments = _segments(ctx, flat_of, offsets, gid_of_root, roots_in_order, channels_of_root)

    groups = []
    for r in roots_in_order:
        gid = gid_of_root[r]
        n = len(channels_of_root[r])
        frozen = "; ".join(reasons[r]) if r in reasons else None
        group_atoms = atoms.get(r) or [[i] for i in range(n)]
        sizes = {len(a) for a in group_atoms}
        if frozen is None and len(sizes) > 1:
            frozen = "channels are coupled in blocks of unequal size"
        if frozen is None and n < MIN_CHANNELS:
            frozen = f"only {n} channel"
        if frozen is None and len(group_atoms) < 2:
            frozen = "a single indivisible block of channels"
        if frozen is None and not any(m.role in (OUT, THROUGH) for m in members[r]):
            frozen = "no producer weight to slice"
        groups.append(Group(gid, ctx.blocks[_first_block(ctx, block_root, r)].node, n,
                            members[r], frozen, group_atoms if len(sizes) == 1 and max(sizes) > 1 else [],
                            segments.get(r, [])))
    # head-split tensors live only inside attention; consumers of `tensors` see channel axes
    tensors = {name: info for name, info in ctx.info.items() if not info.multi}
    return Analysis(sha256, groups, ctx.slices, ctx.fixups, tensors, flat_of, offsets)


def _segments(ctx, flat_of, offsets, gid_of_root, roots, channels_of_root) -> dict[int, list[list[int]]]:
    """Partition each group's channels by which Split output / Slice range they reach and
    which producer makes them."""
    labels: dict[int, tuple] = {}
    for k, f in enumerate(ctx.fixups):
        if f.kind == "split":
            bounds = np.cumsum([0] + list(f.data["sizes"]))
            parts = [(f.ids[a:b], (k, s)) for s, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]
        elif f.kind == "slice":
            inside = np.zeros(len(f.ids), dtype=bool)
            inside[f.data["begin"]:f.data["end"]] = True
            parts = [(f.ids[inside], (k, 1)), (f.ids[~inside], (k, 0))]
        else:
            continue
        for ids, label in parts:
            for flat in flat_of[ids].tolist():
                labels[flat] = labels.get(flat, ()) + (label,)
    # a producer may not lose every output channel either (convs concatenated, then tied
    # to another producer by a residual add, share one group)
    for k, s in enumerate(ctx.slices):
        if s.member.role == OUT and s.member.param == "weight":
            for flat in flat_of[s.ids].tolist():
                labels[flat] = labels.get(flat, ()) + (("out", k),)
    out = {}
    for r in roots:
        off, n = offsets[gid_of_root[r]], len(channels_of_root[r])
        by_label: dict[tuple, list[int]] = {}
        for c in range(n):
            by_label.setdefault(labels.get(off + c, ()), []).append(c)
        if len(by_label) > 1:
            out[r] = sorted(by_label.values())
    return out


def _first_block(ctx, block_root, r) -> int:
    for b in range(len(ctx.blocks)):
        if int(block_root[b]) == r:
            return b
    return 0


def _node_op(ctx: Context, name: str) -> str:
    for node in ctx.graph.node:
        if node.name == name:
            return node.op_type
    return ""


def _atoms(ctx: Context, cls, chan_index, group_root_of_id) -> dict[int, list[list[int]]]:
    if not ctx.atom_unions:
        return {}
    uf = UnionFind()
    uf.grow(len(cls))
    for ids in ctx.atom_unions:
        first = int(cls[ids[0]])
        for i in ids[1:].tolist():
            uf.union(first, int(cls[i]))
    by_group: dict[int, dict[int, list[int]]] = {}
    for c, idx in chan_index.items():
        r = int(group_root_of_id[c])
        by_group.setdefault(r, {}).setdefault(uf.find(c), []).append(idx)
    return {r: sorted(sorted(a) for a in comps.values()) for r, comps in by_group.items()
            if any(len(a) > 1 for a in comps.values())}
