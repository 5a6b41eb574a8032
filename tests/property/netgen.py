"""Random small CNNs for property tests: a hypothesis strategy draws a network *spec* (a
list of ops with their channel counts, checked against the running shape while drawing),
`RandomNet` builds the torch module from it, and `random_keep` draws which channels each
prunable group keeps (random subsets of whole atoms, not just the top ratio).

The spec is plain data, so a failing example prints as something one can paste into a
regression test: `RandomNet(Spec(...))`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import strategies as st

MAX_CHANNELS = 24


@dataclass(frozen=True)
class Op:
    kind: str
    args: tuple


@dataclass(frozen=True)
class Spec:
    in_channels: int
    size: int            # input height = width
    ops: tuple[Op, ...]
    head: Op
    extra_output: int | None = None   # index of an intermediate also returned (frozen)
    seed: int = 0


ACT_FNS = {
    "relu": F.relu,
    "relu6": F.relu6,
    "sigmoid": torch.sigmoid,
    "hardsigmoid": F.hardsigmoid,
    "hardswish": F.hardswish,
    "silu": F.silu,
    "silu_written": lambda x: x * torch.sigmoid(x),
    "leaky_relu": lambda x: F.leaky_relu(x, 0.1),
    "gelu": F.gelu,
    "tanh": torch.tanh,
    "elu": F.elu,
    "identity": lambda x: x,
}
ACTS = tuple(ACT_FNS)
COMBINE_FNS = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "max": torch.maximum}
COMBINE = tuple(COMBINE_FNS)


def act(name: str, x: torch.Tensor) -> torch.Tensor:
    return ACT_FNS[name](x)


def combine(how: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return COMBINE_FNS[how](a, b)


class ConvUnit(nn.Module):
    """Conv (any groups) → optional BN → activation."""

    def __init__(self, cin, cout, k=3, stride=1, groups=1, bias=True, norm=True, act_name="relu"):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=bias)
        self.bn = nn.BatchNorm2d(cout) if norm else None
        self.act_name = act_name

    def forward(self, x):
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return act(self.act_name, x)


class Layer(nn.Module):
    """One op of the spec; forward(x, saved) -> x, `saved` holds every earlier output."""

    def __init__(self, op: Op, c: int):
        super().__init__()
        self.op = op
        k, a = op.kind, op.args
        if k == "conv":            # cout, kernel, stride, groups, bias, norm, act
            cout, kern, stride, groups, bias, norm, act_name = a
            self.unit = ConvUnit(c, cout, kern, stride, groups, bias, norm, act_name)
        elif k == "residual":      # hidden, kernel, act, combine
            hidden, kern, act_name, _ = a
            self.body = nn.Sequential(ConvUnit(c, hidden, kern, act_name=act_name),
                                      ConvUnit(hidden, c, kern, act_name="identity"))
        elif k == "branch_cat":    # couts of parallel convs on x (0 = x itself)
            self.branches = nn.ModuleList(ConvUnit(c, n, 1, act_name="relu") if n else nn.Identity()
                                          for n in a[0])
        elif k == "split":         # sizes, which part gets a conv, its cout, merge ("cat"/"add")
            sizes, which, cout, _ = a
            self.unit = ConvUnit(sizes[which], cout, 3, act_name="relu")
        elif k == "se":            # reduced width, gate
            self.fc1 = nn.Conv2d(c, a[0], 1)
            self.fc2 = nn.Conv2d(a[0], c, 1)
        elif k == "convT":         # cout
            self.up = nn.ConvTranspose2d(c, a[0], 2, stride=2)
        elif k == "bn":
            self.bn = nn.BatchNorm2d(c)
        elif k == "scale":         # per-channel affine constants (Mul and Add by a weight)
            self.gamma = nn.Parameter(torch.randn(1, c, 1, 1))
            self.beta = nn.Parameter(torch.randn(1, c, 1, 1))

    def forward(self, x, saved):
        k, a = self.op.kind, self.op.args
        if k == "conv":
            return self.unit(x)
        if k == "residual":
            return combine(a[3], x, self.body(x))
        if k == "skip":            # index of an earlier output of the same shape, combine
            return combine(a[1], x, saved[a[0]])
        if k == "skip_cat":        # index of an earlier output of the same spatial size
            return torch.cat([x, saved[a[0]]], 1)
        if k == "branch_cat":
            return torch.cat([b(x) for b in self.branches], 1)
        if k == "split":
            sizes, which, _, merge = a
            parts = list(torch.split(x, list(sizes), 1))
            parts[which] = self.unit(parts[which])
            if merge == "add":
                out = parts[0]
                for p in parts[1:]:
                    out = out + p
                return out
            return torch.cat(parts, 1)
        if k == "slice":           # begin, end
            return x[:, a[0]:a[1]]
        if k == "se":
            s = F.adaptive_avg_pool2d(x, 1)
            s = act(a[1], self.fc2(F.relu(self.fc1(s))))
            return x * s
        if k == "pool":
            return F.max_pool2d(x, 2) if a[0] == "max" else F.avg_pool2d(x, 2)
        if k == "upsample":
            return F.interpolate(x, scale_factor=2, mode="nearest")
        if k == "convT":
            return self.up(x)
        if k == "act":
            return act(a[0], x)
        if k == "bn":
            return self.bn(x)
        if k == "scale":
            return x * self.gamma + self.beta
        raise ValueError(k)


class Head(nn.Module):
    def __init__(self, op: Op, c: int, size: int):
        super().__init__()
        self.op = op
        k, a = op.kind, op.args
        if k == "conv":            # out channels
            self.conv = nn.Conv2d(c, a[0], 1)
        elif k == "flatten_mlp":   # hidden, act, out
            self.fc1 = nn.Linear(c * size * size, a[0])
            self.fc2 = nn.Linear(a[0], a[2])
        elif k == "gap_linear":    # out
            self.fc = nn.Linear(c, a[0])
        elif k == "mean_mlp":      # hidden, act, out
            self.fc1 = nn.Linear(c, a[0])
            self.fc2 = nn.Linear(a[0], a[2])
        elif k == "token_mlp":     # hidden, act, out, layernorm: channels-last MatMuls
            self.norm = nn.LayerNorm(c) if a[3] else nn.Identity()
            self.fc1 = nn.Linear(c, a[0])
            self.fc2 = nn.Linear(a[0], c)
            self.out = nn.Linear(c, a[2])

    def forward(self, x):
        k, a = self.op.kind, self.op.args
        if k == "conv":
            return self.conv(x)
        if k == "flatten_mlp":
            return self.fc2(act(a[1], self.fc1(torch.flatten(x, 1))))
        if k == "gap_linear":
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
        if k == "mean_mlp":
            return self.fc2(act(a[1], self.fc1(x.mean((2, 3)))))
        if k == "token_mlp":
            t = x.flatten(2).transpose(1, 2)
            t = t + self.fc2(act(a[1], self.fc1(self.norm(t))))
            return self.out(t.mean(1))
        raise ValueError(k)


class RandomNet(nn.Module):
    def __init__(self, spec: Spec):
        super().__init__()
        self.spec = spec
        torch.manual_seed(spec.seed)
        c, s = spec.in_channels, spec.size
        layers = []
        for op in spec.ops:
            layers.append(Layer(op, c))
            c, s = out_shape(op, c, s, _shapes(spec, len(layers) - 1))
        self.layers = nn.ModuleList(layers)
        self.head = Head(spec.head, c, s)
        _randomise_norms(self, torch.Generator().manual_seed(spec.seed + 1))

    def forward(self, x):
        saved = [x]
        for layer in self.layers:
            x = layer(x, saved)
            saved.append(x)
        y = self.head(x)
        if self.spec.extra_output is not None:
            return y, saved[self.spec.extra_output]
        return y


def _randomise_norms(module: nn.Module, gen: torch.Generator) -> None:
    """Fresh BNs are the identity; random statistics make zeroing a wrong channel visible."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.5)
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)


def _shapes(spec: Spec, upto: int) -> list[tuple[int, int]]:
    """(channels, size) of saved[0..upto]: the input and each op's output before op `upto`."""
    c, s = spec.in_channels, spec.size
    shapes = [(c, s)]
    for op in spec.ops[:upto]:
        c, s = out_shape(op, c, s, shapes)
        shapes.append((c, s))
    return shapes


def out_shape(op: Op, c: int, s: int, saved: list[tuple[int, int]]) -> tuple[int, int]:
    k, a = op.kind, op.args
    if k == "conv":
        return a[0], (s + a[2] - 1) // a[2] if a[2] > 1 else s
    if k == "skip_cat":
        return c + saved[a[0]][0], s
    if k == "branch_cat":
        return sum(n if n else c for n in a[0]), s
    if k == "split":
        sizes, which, cout, merge = a
        if merge == "add":
            return sizes[0], s
        return sum(sizes) - sizes[which] + cout, s
    if k == "slice":
        return a[1] - a[0], s
    if k == "pool":
        return c, s // 2
    if k == "upsample":
        return c, s * 2
    if k == "convT":
        return a[0], s * 2
    return c, s


# ---- the strategy ---------------------------------------------------------------------------
channels = st.integers(2, 16)


@st.composite
def op_for(draw, c: int, s: int, saved: list[tuple[int, int]]) -> Op:
    kinds = ["conv", "conv", "depthwise", "grouped", "residual", "branch_cat", "se", "act",
             "bn", "scale"]
    if any(sc == (c, s) for sc in saved[1:]):
        kinds += ["skip", "skip"]
    if any(ss == s for _, ss in saved[1:]) and c < MAX_CHANNELS - 2:
        kinds.append("skip_cat")
    if c >= 4:
        kinds += ["split", "split", "slice"]
    if s >= 4:
        kinds.append("pool")
    if s <= 4:
        kinds += ["upsample", "convT"]
    kind = draw(st.sampled_from(kinds))
    acts = st.sampled_from(ACTS)
    if kind == "conv":
        stride = draw(st.sampled_from([1, 1, 1, 2])) if s >= 4 else 1
        return Op("conv", (draw(channels), draw(st.sampled_from([1, 3])), stride, 1,
                           draw(st.booleans()), draw(st.booleans()), draw(acts)))
    if kind == "depthwise":
        mult = draw(st.sampled_from([1, 1, 2]))
        return Op("conv", (c * mult, 3, 1, c, draw(st.booleans()), draw(st.booleans()), draw(acts)))
    if kind == "grouped":
        divisors = [g for g in range(2, c + 1) if c % g == 0 and g != c] or [1]
        g = draw(st.sampled_from(divisors))
        # out per group == in per group prunes whole groups; anything else freezes
        cout = draw(st.sampled_from([c, c, g * draw(st.integers(1, 3))]))
        return Op("conv", (cout, draw(st.sampled_from([1, 3])), 1, g, draw(st.booleans()),
                           draw(st.booleans()), draw(acts)))
    if kind == "residual":
        return Op("residual", (draw(channels), draw(st.sampled_from([1, 3])), draw(acts),
                               draw(st.sampled_from(COMBINE))))
    if kind == "skip":
        j = draw(st.sampled_from([i for i, sc in enumerate(saved) if i > 0 and sc == (c, s)]))
        return Op("skip", (j, draw(st.sampled_from(COMBINE))))
    if kind == "skip_cat":
        options = [i for i, (cc, ss) in enumerate(saved) if i > 0 and ss == s and c + cc <= MAX_CHANNELS]
        if not options:
            return Op("act", (draw(acts),))
        return Op("skip_cat", (draw(st.sampled_from(options)),))
    if kind == "branch_cat":
        n = draw(st.integers(2, 3))
        couts = tuple(draw(st.sampled_from([0, 2, 3, 4, 6, 8])) for _ in range(n))
        if sum(x if x else c for x in couts) > MAX_CHANNELS or not any(couts):
            couts = (0, 4) if c + 4 <= MAX_CHANNELS else (4, 4)
        return Op("branch_cat", (couts,))
    if kind == "split":
        if c % 2 == 0 and draw(st.booleans()):
            half = c // 2
            return Op("split", ((half, half), draw(st.integers(0, 1)), half, draw(st.sampled_from(["cat", "add"]))))
        first = draw(st.integers(1, c - 1))
        which = draw(st.integers(0, 1))
        sizes = (first, c - first)
        return Op("split", (sizes, which, draw(channels), "cat"))
    if kind == "slice":
        begin = draw(st.integers(0, c - 2))
        end = draw(st.integers(begin + 2, c))
        return Op("slice", (begin, end))
    if kind == "se":
        return Op("se", (draw(st.integers(2, max(2, c))), draw(st.sampled_from(["sigmoid", "hardsigmoid"]))))
    if kind == "pool":
        return Op("pool", (draw(st.sampled_from(["max", "avg"])),))
    if kind == "upsample":
        return Op("upsample", ())
    if kind == "convT":
        return Op("convT", (draw(channels),))
    if kind == "act":
        return Op("act", (draw(acts),))
    return Op(kind, ())


@st.composite
def specs(draw, max_ops: int = 7) -> Spec:
    cin = draw(st.integers(1, 4))
    size = draw(st.sampled_from([4, 8]))
    c, s = cin, size
    shapes = [(c, s)]
    ops = []
    for _ in range(draw(st.integers(1, max_ops))):
        op = draw(op_for(c, s, shapes))
        ops.append(op)
        c, s = out_shape(op, c, s, shapes)
        shapes.append((c, s))
    acts = st.sampled_from(ACTS)
    head_kind = draw(st.sampled_from(["conv", "flatten_mlp", "gap_linear", "mean_mlp", "token_mlp"]))
    if head_kind == "conv":
        head = Op("conv", (draw(st.integers(1, 4)),))
    elif head_kind == "gap_linear":
        head = Op("gap_linear", (draw(st.integers(1, 5)),))
    elif head_kind == "token_mlp":
        head = Op(head_kind, (draw(channels), draw(acts), draw(st.integers(1, 5)), draw(st.booleans())))
    else:
        head = Op(head_kind, (draw(channels), draw(acts), draw(st.integers(1, 5))))
    extra = draw(st.one_of(st.none(), st.integers(1, len(ops)))) if draw(st.integers(0, 4)) == 0 else None
    return Spec(cin, size, tuple(ops), head, extra, draw(st.integers(0, 2**16)))


@st.composite
def random_keep(draw, analysis) -> dict[str, list[int]]:
    """A random subset of whole atoms per prunable group, keeping at least one channel of
    each of the group's segments (Split outputs, Slice ranges, producers); at least one
    group loses channels when any group can."""
    keep = {}
    groups = analysis.prunable()
    forced = draw(st.integers(0, max(0, len(groups) - 1)))
    for k, g in enumerate(groups):
        if k != forced and not draw(st.booleans()):
            continue
        kept = draw(_keep_of(g))
        if len(kept) < g.channels:
            keep[g.id] = kept
    return keep


@st.composite
def _keep_of(draw, g) -> list[int]:
    atoms = g.atoms or [[i] for i in range(g.channels)]
    chosen = draw(st.sets(st.integers(0, len(atoms) - 1), min_size=1, max_size=len(atoms) - 1))
    for seg in g.segments:
        if not any(set(atoms[a]) & set(seg) for a in chosen):
            touching = [a for a, members in enumerate(atoms) if set(members) & set(seg)]
            chosen.add(draw(st.sampled_from(touching)))
    return sorted(i for a in chosen for i in atoms[a])


def input_shape(spec: Spec) -> tuple[int, int, int, int]:
    return (1, spec.in_channels, spec.size, spec.size)


def seeded_input(spec: Spec) -> np.ndarray:
    return np.random.default_rng(spec.seed).standard_normal(input_shape(spec)).astype(np.float32)


def export_dynamic(module: torch.nn.Module, spec: Spec, axes: dict[int, str]):
    """Export as torch does for a deployable checkpoint with `dynamic_axes` (batch and often
    height/width named dynamic: flattens and resizes then read Shape), and load it at the
    spec's size as `--input-shape` would."""
    import io
    import warnings

    from edgeprune.frontend.load import load_model_bytes

    module.eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.randn(*input_shape(spec)),), buf, dynamo=False, opset_version=17,
                          input_names=["x0"], dynamic_axes={"x0": axes},
                          training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    return load_model_bytes(buf.getvalue(), input_shapes={"x0": input_shape(spec)})
