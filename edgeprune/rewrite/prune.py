"""Physically remove channels: slice every coupled initializer, fix the counts in
attributes and shape constants, re-infer shapes. No masks, no selector ops."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import UsageError
from ..frontend.load import Model
from ..graph.groups import Analysis


def prune(model: Model, analysis: Analysis, keep: Mapping[str, Sequence[int]]) -> Model:
    """A physically smaller model keeping, for each group in `keep`, the listed channel
    indices (groups not listed stay whole)."""
    if analysis.model_sha256 != model.sha256:
        raise UsageError("the channel analysis belongs to another model")
    mask = analysis.keep_mask(keep)
    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    graph = proto.graph
    inits = {t.name: t for t in graph.initializer}
    nodes = {n.name: n for n in graph.node}

    arrays: dict[str, np.ndarray] = {}
    for s in analysis.slices:
        kept = analysis.positions_kept(s.ids, mask)
        if kept.all():
            continue
        arr = arrays.get(s.tensor)
        if arr is None:
            arr = numpy_helper.to_array(inits[s.tensor])
        if arr.shape[s.axis] != len(s.ids):
            raise AssertionError(f"{s.tensor}: axis {s.axis} has {arr.shape[s.axis]}, traced {len(s.ids)}")
        if not kept.any():
            raise UsageError(f"the plan removes every channel of '{s.tensor}' (node '{s.member.node}')")
        arrays[s.tensor] = np.take(arr, np.flatnonzero(kept), axis=s.axis)
    for name, arr in arrays.items():
        inits[name].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(arr), name))

    taken = set(inits)
    for f in analysis.fixups:
        kept = analysis.positions_kept(f.ids, mask)
        if kept.all():
            continue
        node = nodes[f.node]
        _FIXERS[f.kind](node, f, kept, inits, graph, taken)

    del graph.value_info[:]
    out = model.replace(proto)
    try:
        onnx.checker.check_model(out.proto)
    except onnx.checker.ValidationError as e:  # a rewrite bug, not the user's input
        raise AssertionError(f"pruned model fails the ONNX checker: {e}") from None
    return out


def _new_const(graph, taken, base: str, arr: np.ndarray) -> str:
    name, k = base, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    graph.initializer.append(numpy_helper.from_array(arr, name))
    return name


def _set_attr(node, name, value) -> None:
    for a in node.attribute:
        if a.name == name:
            node.attribute.remove(a)
            break
    node.attribute.append(onnx.helper.make_attribute(name, value))


def _fix_group(node, f, kept, inits, graph, taken) -> None:
    unit = f.data.get("unit", 1)
    _set_attr(node, "group", int(kept.sum()) // unit)


def _fix_split(node, f, kept, inits, graph, taken) -> None:
    offsets = np.cumsum([0] + list(f.data["sizes"]))
    sizes = [int(kept[a:b].sum()) for a, b in zip(offsets[:-1], offsets[1:])]
    if 0 in sizes:
        raise UsageError(f"the plan removes every channel of an output of Split '{node.name}'")
    if len(node.input) > 1 and node.input[1]:
        node.input[1] = _new_const(graph, taken, f"{node.name}/split", np.asarray(sizes, dtype=np.int64))
    elif any(a.name == "split" for a in node.attribute) or f.data.get("opset", 13) < 13:
        _set_attr(node, "split", sizes)
    else:
        while len(node.input) < 2:
            node.input.append("")
        node.input[1] = _new_const(graph, taken, f"{node.name}/split", np.asarray(sizes, dtype=np.int64))
        for a in list(node.attribute):
            if a.name == "num_outputs":
                node.attribute.remove(a)


def _fix_slice(node, f, kept, inits, graph, taken) -> None:
    k = f.data["index"]
    begin = int(kept[:f.data["begin"]].sum())
    end = int(kept[:f.data["end"]].sum())
    if end <= begin:
        raise UsageError(f"the plan removes every channel that Slice '{node.name}' reads")
    for pos, value in ((1, begin), (2, end)):
        arr = numpy_helper.to_array(inits[node.input[pos]]).copy()
        arr.reshape(-1)[k] = value
        node.input[pos] = _new_const(graph, taken, f"{node.name}/{'starts' if pos == 1 else 'ends'}", arr)


def _fix_shape(node, f, kept, inits, graph, taken) -> None:
    pos, index = f.data["input"], f.data["index"]
    arr = numpy_helper.to_array(inits[node.input[pos]]).copy()
    arr.reshape(-1)[index] = int(kept.sum()) // f.data.get("divisor", 1)
    node.input[pos] = _new_const(graph, taken, f"{node.name}/shape", arr)


_FIXERS = {"group": _fix_group, "split": _fix_split, "slice": _fix_slice, "shape": _fix_shape}
