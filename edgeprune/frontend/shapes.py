"""Reading declared dims as real exporters write them.

A dim is *static* only when it has a positive `dim_value`. Exporters write a dynamic dim in
several ways: a `dim_param` name (PyTorch, most), `dim_value: -1` (Paddle2ONNX), `dim_value: 0`
(some converters) or neither field set; ONNX Runtime treats all of them as dynamic, and so does
every shape reader in edgeprune (through these helpers).
"""

from __future__ import annotations

from typing import Iterable

import onnx


def dim_size(d: onnx.TensorShapeProto.Dimension) -> int | None:
    """The dim's size, or None when it is dynamic (named, ≤ 0 or unset)."""
    if d.HasField("dim_value") and d.dim_value > 0:
        return int(d.dim_value)
    return None


def declared_dims(vi: onnx.ValueInfoProto) -> tuple[int | None, ...] | None:
    """Each dim's size (None where dynamic), or None when the value has no shape at all."""
    t = vi.type
    if not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
        return None
    return tuple(dim_size(d) for d in t.tensor_type.shape.dim)


def static_shape(vi: onnx.ValueInfoProto) -> tuple[int, ...] | None:
    """The shape when every dim is static, else None."""
    dims = declared_dims(vi)
    if dims is None or any(d is None for d in dims):
        return None
    return tuple(dims)  # type: ignore[arg-type]


def dim_name(d: onnx.TensorShapeProto.Dimension) -> str | None:
    """A dynamic dim's dim_param when it names something (Paddle2ONNX writes `?`)."""
    name = d.dim_param if d.HasField("dim_param") else ""
    return name if name and any(ch.isalnum() for ch in name) else None


def dim_label(d: onnx.TensorShapeProto.Dimension, axis: int) -> str:
    """How a dynamic dim is named in messages: its dim_param, else its axis."""
    return dim_name(d) or f"axis{axis}"


def dims_text(dims: Iterable[onnx.TensorShapeProto.Dimension]) -> str:
    """`[?, 3, h, w]`: static sizes, dim_param names, `?` for -1, 0, unset and unnamed."""
    parts = []
    for d in dims:
        size = dim_size(d)
        parts.append(str(size) if size is not None else (dim_name(d) or "?"))
    return "[" + ", ".join(parts) + "]"
