"""The state op rules write into while channels are traced through a graph.

Every channel of every activation tensor gets an integer id. A rule either passes ids
through (elementwise ops, BN, pooling), makes fresh ids (a conv's output channels), merges
ids that must go together (a residual Add), or freezes ids it cannot prove safe to remove.
Ids are merged in a union-find; the blocks of fresh ids a producer creates are merged in a
second one, so that a group is "the producers whose channels got tied together".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from ..frontend.shapes import static_shape as _static_shape
from .types import Fixup, Member, Slice


@dataclass
class ChannelInfo:
    """Where a tensor's channels are and which channel id sits at each position.

    Usually one axis with a 1-D `ids`. After a Reshape splits channels into attention heads
    the channels span several axes (`axes`, ascending) and `ids` has one dim per axis."""

    axis: int
    ids: np.ndarray
    axes: tuple[int, ...] = ()

    def __post_init__(self):
        if not self.axes:
            self.axes = (self.axis,)

    @property
    def multi(self) -> bool:
        return len(self.axes) > 1


class UnionFind:
    def __init__(self):
        self.parent: list[int] = []

    def grow(self, n: int) -> int:
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        return start

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # the older root wins, so a group's root is its first producer
            if rb < ra:
                ra, rb = rb, ra
            self.parent[rb] = ra

    def roots(self) -> np.ndarray:
        return np.fromiter((self.find(i) for i in range(len(self.parent))), dtype=np.int64,
                           count=len(self.parent))


@dataclass
class Block:
    """Channels created together by one producer node."""

    node: str
    op_type: str
    start: int
    size: int


class Context:
    def __init__(self, proto: onnx.ModelProto):
        g = proto.graph
        self.graph = g
        self.opset = next((i.version for i in proto.opset_import if i.domain in ("", "ai.onnx")), 0)
        self.initializers = {t.name: t for t in g.initializer}
        self._arrays: dict[str, np.ndarray] = {}
        self.shapes: dict[str, tuple[int, ...] | None] = {}
        for vi in list(g.input) + list(g.value_info) + list(g.output):
            self.shapes[vi.name] = _static_shape(vi)
        for t in g.initializer:
            self.shapes[t.name] = tuple(t.dims)
        self.info: dict[str, ChannelInfo] = {}
        self.ids = UnionFind()
        self.blocks_uf = UnionFind()
        self.block_of: list[int] = []   # id -> block index
        self.blocks: list[Block] = []
        self.atom_unions: list[np.ndarray] = []
        self.frozen: list[tuple[np.ndarray, str]] = []
        self.slices: list[Slice] = []
        self.fixups: list[Fixup] = []

    # -- reading the graph ---------------------------------------------------------------
    def shape(self, name: str) -> tuple[int, ...] | None:
        return self.shapes.get(name) if name else None

    def rank(self, name: str) -> int | None:
        s = self.shape(name)
        return None if s is None else len(s)

    def is_const(self, name: str) -> bool:
        return bool(name) and name in self.initializers

    def const(self, name: str) -> np.ndarray | None:
        if not self.is_const(name):
            return None
        if name not in self._arrays:
            self._arrays[name] = numpy_helper.to_array(self.initializers[name])
        return self._arrays[name]

    def get(self, name: str) -> ChannelInfo | None:
        return self.info.get(name) if name else None

    def analysis_info(self, name: str) -> ChannelInfo | None:
        info = self.get(name)
        return None if info is None or info.multi else info

    # -- writing channel facts -----------------------------------------------------------
    def set(self, name: str, axis: int, ids: np.ndarray) -> None:
        self.info[name] = ChannelInfo(axis, np.asarray(ids, dtype=np.int64))

    def set_axes(self, name: str, axes, ids: np.ndarray) -> None:
        """Channels spread over several axes (ids has one dim per axis, in axis order)."""
        axes = tuple(int(a) for a in axes)
        order = np.argsort(axes)
        ids = np.transpose(np.asarray(ids, dtype=np.int64), order)
        axes = tuple(axes[k] for k in order)
        if len(axes) == 1:
            self.set(name, axes[0], ids)
        else:
            self.info[name] = ChannelInfo(axes[0], ids, axes)

    def fresh(self, n: int, node, frozen: str | None = None) -> np.ndarray:
        start = self.ids.grow(n)
        b = self.blocks_uf.grow(1)
        self.blocks.append(Block(node.name, node.op_type, start, n))
        self.block_of.extend([b] * n)
        ids = np.arange(start, start + n, dtype=np.int64)
        if frozen:
            self.freeze(ids, frozen)
        return ids

    def union(self, a: np.ndarray, b: np.ndarray) -> None:
        for x, y in zip(np.ravel(a).tolist(), np.ravel(b).tolist()):
            if x != y:
                self.ids.union(x, y)
                self.blocks_uf.union(self.block_of[x], self.block_of[y])

    def link(self, a: np.ndarray, b: np.ndarray) -> None:
        """Put the producers of a and b in one group without tying the channels themselves."""
        for x, y in zip(np.ravel(a).tolist(), np.ravel(b).tolist()):
            self.blocks_uf.union(self.block_of[x], self.block_of[y])

    def atom(self, ids: np.ndarray) -> None:
        """These channels may only be removed all together (a conv group, a head)."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        self.atom_unions.append(ids)
        # channels removed together are one group, even when several producers made them
        # (a conv group reading a concat); otherwise one producer's part could go alone
        for x in ids[1:].tolist():
            self.blocks_uf.union(self.block_of[int(ids[0])], self.block_of[x])

    def freeze(self, ids: np.ndarray, reason: str) -> None:
        if np.size(ids):
            self.frozen.append((np.asarray(ids, dtype=np.int64).ravel(), reason))

    def freeze_inputs(self, node, reason: str) -> None:
        for name in node.input:
            info = self.get(name)
            if info is not None:
                self.freeze(info.ids, reason)

    def slice(self, tensor: str, axis: int, ids: np.ndarray, node, role: str, param: str = "") -> None:
        ids = np.asarray(ids, dtype=np.int64)
        member = Member(node.name, node.op_type, tensor, int(axis), role, param)
        self.slices.append(Slice(tensor, int(axis), ids, member))

    def fixup(self, node, kind: str, ids: np.ndarray, **data) -> None:
        self.fixups.append(Fixup(node.name, kind, np.asarray(ids, dtype=np.int64), data))
