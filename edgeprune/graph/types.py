"""The Groups artifact: coupled channel groups found on an ONNX graph.

A *channel* of a group is one equivalence class of tensor channels that must be kept or
removed together everywhere it appears (a conv's output channel k, the BN channel k after
it, the residual partner's channel k, column k of the next conv's weight...). A *group* is
a set of such channels that share their producers: pruning removes a subset of a group's
channels, chosen by importance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Member roles: how a sliced tensor relates to the group's channels.
OUT = "out"          # produces the channels (a conv/linear weight's output axis, its bias)
IN = "in"            # consumes them (a conv/linear weight's input axis): contracted away
THROUGH = "through"  # per-channel parameters on the way (BN, depthwise, scale constants)
SHAPE = "shape"      # an attribute or shape constant that counts channels (fixed on rewrite)


@dataclass(frozen=True)
class Member:
    """One place a group's channels live: a tensor sliced along an axis, or a count fixed."""

    node: str
    op_type: str
    tensor: str
    axis: int
    role: str
    param: str = ""   # "weight", "bias", "bn_scale", "bn_bias", "bn_mean", "bn_var", "scale", ...

    def to_json(self) -> dict:
        return {"node": self.node, "op_type": self.op_type, "tensor": self.tensor,
                "axis": self.axis, "role": self.role, "param": self.param}


@dataclass
class Group:
    id: str                     # "g0", "g1", ... stable for the same model
    name: str                   # the root producer's node name (maps back to a module)
    channels: int
    members: list[Member]
    frozen: str | None = None   # why it may not be pruned; None if prunable
    atoms: list[list[int]] = field(default_factory=list)  # channel indices removed together
    # channel indices split apart downstream (Split outputs, Slice ranges): each must keep
    # at least one channel, or an output would vanish
    segments: list[list[int]] = field(default_factory=list)

    @property
    def prunable(self) -> bool:
        return self.frozen is None

    @property
    def atom_size(self) -> int:
        return len(self.atoms[0]) if self.atoms else 1

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "channels": self.channels,
            "prunable": self.prunable,
            "frozen_reason": self.frozen,
            "atom_size": self.atom_size,
            "segments": [len(s) for s in self.segments],
            "members": [m.to_json() for m in self.members],
        }


@dataclass
class Slice:
    """An initializer sliced along an axis; `ids[i]` is the channel id at position i."""

    tensor: str
    axis: int
    ids: np.ndarray
    member: Member


@dataclass
class Fixup:
    """A count in an attribute or shape constant that follows the kept channels.

    kind: "group" (Conv group attr = kept ids / unit), "split" (segment lengths),
    "slice" (start/end along the channel axis), "shape" (one entry of a shape constant
    = kept positions of `ids`).
    """

    node: str
    kind: str
    ids: np.ndarray
    data: dict = field(default_factory=dict)
