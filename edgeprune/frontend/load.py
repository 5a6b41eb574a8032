"""Safe ONNX loading: parse, refuse external data outside the model's folder, check,
normalise (Constant nodes to initializers, unshared weights) and infer static shapes."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import UsageError
from .links import Links
from .shapes import dim_label, dim_name, dim_size, dims_text

# ONNX Runtime and our rewrite rules are tested from opset 11 up.
MIN_OPSET = 11
MAX_OPSET = onnx.defs.onnx_opset_version()


@dataclass
class Model:
    """A loaded, normalised ONNX model with static shapes.

    Edge runtimes want static shapes, so the working model is made static on load: a
    dynamic batch becomes 1, other dynamic dims come from --input-shape, constant
    subgraphs (shape arithmetic) are folded and every intermediate shape is inferred
    (`proto.graph.value_info`). `sha256` is the hash of the source bytes.
    """

    proto: onnx.ModelProto
    sha256: str
    path: Path | None = None
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.stem if self.path else (self.proto.graph.name or "model")

    def replace(self, proto: onnx.ModelProto) -> "Model":
        """A new Model for a rewritten proto: same inputs, hash of the new bytes."""
        data = proto.SerializeToString()
        return Model(proto=infer_static_shapes(proto, self.input_shapes),
                     sha256=hashlib.sha256(data).hexdigest(), path=None,
                     input_shapes=dict(self.input_shapes))


def load_model(path: str | os.PathLike, input_shapes: dict[str, tuple[int, ...]] | None = None) -> Model:
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if not path.is_file():
        raise UsageError(f"{path}: not a file")
    data = path.read_bytes()
    proto = _parse(data, str(path))
    _load_external_data(proto, path)
    return _finish(proto, hashlib.sha256(data).hexdigest(), path, input_shapes)


def load_model_bytes(data: bytes, name: str = "<bytes>",
                     input_shapes: dict[str, tuple[int, ...]] | None = None) -> Model:
    proto = _parse(data, name)
    if any(True for _ in _external_tensors(proto)):
        raise UsageError(f"{name}: model refers to external data but was given without a folder")
    return _finish(proto, hashlib.sha256(data).hexdigest(), None, input_shapes)


def _parse(data: bytes, name: str) -> onnx.ModelProto:
    if not data:
        raise UsageError(f"{name}: empty file, not an ONNX model")
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception as e:  # protobuf raises DecodeError, sometimes RuntimeWarning-ish errors
        raise UsageError(f"{name}: not a valid ONNX model ({type(e).__name__})") from None
    if not proto.HasField("graph") or not proto.graph.node:
        raise UsageError(f"{name}: not a valid ONNX model (no graph)")
    try:
        _decode_strings(proto)
    except UnicodeDecodeError:
        raise UsageError(f"{name}: not a valid ONNX model (a name or string is not UTF-8)") from None
    return proto


def _decode_strings(msg) -> None:
    """Decode every string field now, so invalid UTF-8 is one refusal here rather than a
    UnicodeDecodeError deep inside the checker or a later stage."""
    from google.protobuf.message import Message

    for descriptor, value in msg.ListFields():
        if descriptor.type == descriptor.TYPE_MESSAGE:
            for item in ((value,) if isinstance(value, Message) else value):
                _decode_strings(item)
        elif descriptor.type == descriptor.TYPE_STRING:
            # an invalid UTF-8 string comes back as bytes
            for item in ((value,) if isinstance(value, (str, bytes)) else value):
                if isinstance(item, bytes):
                    item.decode("utf-8")


def _external_tensors(proto: onnx.ModelProto):
    for t in proto.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            yield t
    for n in proto.graph.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_location == onnx.TensorProto.EXTERNAL:
                yield a.t


def _load_external_data(proto: onnx.ModelProto, path: Path) -> None:
    """External data must stay inside the model's own folder: no absolute paths, no `..`,
    no symlink that leads out."""
    tensors = list(_external_tensors(proto))
    if not tensors:
        return
    base = path.parent.resolve()
    for t in tensors:
        location = next((e.value for e in t.external_data if e.key == "location"), None)
        if not location:
            raise UsageError(f"{path}: tensor '{t.name}' has external data without a location")
        if os.path.isabs(location):
            raise UsageError(f"{path}: tensor '{t.name}' external data path '{location}' is absolute")
        target = (base / location).resolve()
        if base != target and base not in target.parents:
            raise UsageError(f"{path}: tensor '{t.name}' external data '{location}' is outside the model's folder")
        if not target.is_file():
            raise UsageError(f"{path}: tensor '{t.name}' external data '{location}' not found")
    try:
        onnx.external_data_helper.load_external_data_for_model(proto, str(base))
    except Exception as e:
        raise UsageError(f"{path}: cannot read external data ({e})") from None


def _finish(proto, sha256, path, input_shapes) -> Model:
    name = str(path) if path else "<bytes>"
    _check_opset(proto, name)
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "invalid model"
        raise UsageError(f"{name}: ONNX checker rejected the model: {first}") from None
    proto = normalise(proto)
    _check_tensor_data(proto, name)
    shapes = _static_input_shapes(proto, input_shapes or {}, name)
    static = infer_static_shapes(proto, shapes)
    # shape arithmetic can hang on shape arithmetic (Resize sizes from Shape(x), then a flatten
    # from Shape of the resized tensor): one fold makes the next shape known, so fold again
    for _ in range(_FOLD_ROUNDS):
        folded = fold_constants(static)
        if folded is static:
            break
        progressed = len(folded.graph.node) < len(static.graph.node)
        static = infer_static_shapes(folded, shapes)
        if not progressed:
            break
    return Model(proto=static, sha256=sha256, path=path, input_shapes=shapes)


_FOLD_ROUNDS = 4


def _check_tensor_data(proto: onnx.ModelProto, name: str) -> None:
    """Every weight holds exactly the values its dims declare (the checker only catches too
    few raw bytes); otherwise reading it later fails deep inside a stage."""
    for t in proto.graph.initializer:
        try:
            numpy_helper.to_array(t)
        except Exception as e:
            raise UsageError(f"{name}: tensor '{t.name}' does not hold the data its dims "
                             f"{list(t.dims)} declare ({type(e).__name__})") from None


def _check_opset(proto, name):
    for imp in proto.opset_import:
        if imp.domain in ("", "ai.onnx"):
            if not (MIN_OPSET <= imp.version <= MAX_OPSET):
                raise UsageError(
                    f"{name}: unsupported opset {imp.version} (supported: {MIN_OPSET}..{MAX_OPSET})")
            return
    raise UsageError(f"{name}: model imports no default-domain opset")


def graph_input_names(proto: onnx.ModelProto) -> list[str]:
    inits = {t.name for t in proto.graph.initializer}
    return [i.name for i in proto.graph.input if i.name not in inits]


def _static_input_shapes(proto, given, name) -> dict[str, tuple[int, ...]]:
    """Resolve each input's static shape. A dim is dynamic when it has a dim_param, a
    dim_value <= 0 (Paddle2ONNX writes -1, some converters 0) or neither (`frontend.shapes`):
    --input-shape fills dynamic dims and must agree with static ones; without it a dynamic
    first (batch) dim is 1 and any other dynamic dim is refused, naming every dim still needed."""
    inits = {t.name for t in proto.graph.initializer}
    shapes = {}
    real_inputs = [i for i in proto.graph.input if i.name not in inits]
    unknown = sorted(set(given) - {i.name for i in real_inputs})
    if unknown and (len(given) > 1 or len(real_inputs) > 1):
        # a mistyped name would otherwise be ignored, and the error would blame another input
        raise UsageError(f"{name}: --input-shape names '{unknown[0]}', but the model's inputs are "
                         f"{', '.join(i.name for i in real_inputs)}")
    needed = []   # (input, its dims text, labels of the dims it still needs, example)
    for inp in real_inputs:
        has_shape = inp.type.HasField("tensor_type") and inp.type.tensor_type.HasField("shape")
        dims = inp.type.tensor_type.shape.dim if has_shape else []
        if inp.name in given or (len(given) == 1 and len(real_inputs) == 1):
            shape = tuple(given.get(inp.name, next(iter(given.values()))))
            _check_given(name, inp.name, dims, shape)
            shapes[inp.name] = shape
            continue
        if not has_shape:
            needed.append((inp.name, "no shape", ["all"], None))
            continue
        resolved, missing = [], []
        for k, d in enumerate(dims):
            size = dim_size(d)
            if size is not None:
                resolved.append(size)
            elif k == 0:
                resolved.append(1)
            else:
                missing.append(k)
                resolved.append(None)
        if missing:
            labels = [f"{dim_name(dims[k])} (axis {k})" if dim_name(dims[k]) else f"axis {k}" for k in missing]
            example = "x".join(str(s) if s is not None else f"<{dim_label(dims[k], k)}>"
                               for k, s in enumerate(resolved))
            needed.append((inp.name, f"dynamic dims {dims_text(dims)}", labels, example))
            continue
        shapes[inp.name] = tuple(resolved)
    if needed:
        raise UsageError(f"{name}: " + _needed_message(needed, several=len(real_inputs) > 1))
    return shapes


def _check_given(name, input_name, dims, shape) -> None:
    if dims and len(dims) != len(shape):
        raise UsageError(f"{name}: input '{input_name}' has rank {len(dims)}, "
                         f"--input-shape gives rank {len(shape)}")
    clash = [k for k, (d, s) in enumerate(zip(dims, shape)) if dim_size(d) not in (None, s)]
    if clash:
        which = ", ".join(f"axis {k} is {dim_size(dims[k])}" for k in clash)
        raise UsageError(f"{name}: input '{input_name}' has shape {dims_text(dims)} ({which}), "
                         f"--input-shape gives {'x'.join(map(str, shape))}")


def _needed_message(needed, several: bool) -> str:
    parts, examples = [], []
    for input_name, what, labels, example in needed:
        dims = "its whole shape" if labels == ["all"] else " and ".join(labels)
        parts.append(f"input '{input_name}' has {what}: --input-shape must give {dims}")
        if example is not None:
            examples.append(f"{input_name}:{example}" if several else example)
    hint = f" (e.g. --input-shape {','.join(examples)})" if examples else ""
    return "; ".join(parts) + hint


def normalise(proto: onnx.ModelProto) -> onnx.ModelProto:
    """One form for every exporter: Constant nodes become initializers (Paddle keeps weights
    in Constant nodes) and each node gets its own copy of a shared weight, so slicing one
    consumer never changes another. Nodes get unique names."""
    proto = _copy(proto)
    g = proto.graph
    keep = []
    for node in g.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and len(node.output) == 1:
            t = _constant_value(node)
            if t is not None:
                t.name = node.output[0]
                g.initializer.append(t)
                continue
        keep.append(node)
    if len(keep) != len(g.node):
        del g.node[:]
        g.node.extend(keep)

    links = Links(g)
    inits = {t.name: t for t in g.initializer}
    graph_inputs = {i.name for i in g.input}
    for name in list(links.consumers):
        t = inits.get(name)
        if t is None or links.uses(name) < 2 or name in graph_inputs or _numel(t) <= 1:
            continue
        arr = numpy_helper.to_array(t)
        seen = 0
        for node in g.node:
            for k, inp in enumerate(node.input):
                if inp != name:
                    continue
                seen += 1
                if seen == 1:
                    continue
                copy_name = _unique(f"{name}__{node.name or node.op_type}_{seen}", inits)
                g.initializer.append(numpy_helper.from_array(arr, copy_name))
                inits[copy_name] = g.initializer[-1]
                node.input[k] = copy_name

    names = set()
    for k, node in enumerate(g.node):
        base = node.name or f"{node.op_type}_{k}"
        node.name = _unique(base, names)
        names.add(node.name)
    return proto


def _unique(base, taken) -> str:
    if base not in taken:
        return base
    k = 1
    while f"{base}_{k}" in taken:
        k += 1
    return f"{base}_{k}"


def _numel(t: onnx.TensorProto) -> int:
    n = 1
    for d in t.dims:
        n *= d
    return n


def _constant_value(node) -> onnx.TensorProto | None:
    for a in node.attribute:
        if a.name == "value" and a.type == onnx.AttributeProto.TENSOR:
            t = onnx.TensorProto()
            t.CopyFrom(a.t)
            return t
        if a.name in ("value_float", "value_int", "value_floats", "value_ints"):
            v = onnx.helper.get_attribute_value(a)
            dtype = np.float32 if "float" in a.name else np.int64
            return numpy_helper.from_array(np.asarray(v, dtype=dtype))
    return None


def _copy(proto: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    return out


def infer_static_shapes(proto: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]]) -> onnx.ModelProto:
    """A copy with the given static input shapes and all value_info inferred.

    Inference runs on a skeleton whose big weights are declared as typed graph inputs
    instead of carried as data: the shapes are the same, and it avoids serialising
    hundreds of MB (ResNet-50: seconds) through the C++ inference."""
    static = _copy(proto)
    del static.graph.value_info[:]
    # a weight listed among the graph inputs (older exporters) is declared with its real dims:
    # exporters write dynamic dims there too, and inference would carry them downstream
    weight_dims = {t.name: tuple(t.dims) for t in static.graph.initializer}
    for inp in static.graph.input:
        shape = input_shapes.get(inp.name, weight_dims.get(inp.name))
        if shape is not None and inp.type.HasField("tensor_type"):
            dims = inp.type.tensor_type.shape.dim
            del dims[:]
            for d in shape:
                dims.add().dim_value = int(d)
    declared_out = {o.name: onnx.ValueInfoProto.FromString(o.SerializeToString()) for o in static.graph.output}
    for out in static.graph.output:
        # stale output dims would contradict the new static shapes
        if out.type.HasField("tensor_type"):
            out.type.tensor_type.ClearField("shape")
    skeleton = onnx.ModelProto()
    _skeleton_into(skeleton, static)
    try:
        inferred = onnx.shape_inference.infer_shapes(skeleton, check_type=False, strict_mode=True, data_prop=True)
    except Exception as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"shape inference failed: {msg}") from None
    weights = {t.name for t in static.graph.initializer}
    static.graph.value_info.extend(vi for vi in inferred.graph.value_info if vi.name not in weights)
    inferred_out = {o.name: o for o in inferred.graph.output}
    for out in static.graph.output:
        if out.name in inferred_out and inferred_out[out.name].type.tensor_type.HasField("shape"):
            out.CopyFrom(inferred_out[out.name])
        else:   # inference could not follow it: keep what the model declared (dims dynamic)
            out.CopyFrom(declared_out[out.name])
    return static


# Weights bigger than this are shape-only in the inference skeleton; smaller ones (shape
# constants, split sizes) keep their values for data propagation.
_SKELETON_MAX_ELEMENTS = 64


def _skeleton_into(skeleton: onnx.ModelProto, proto: onnx.ModelProto) -> None:
    g = proto.graph
    skeleton.ir_version = proto.ir_version
    skeleton.opset_import.extend(proto.opset_import)
    skeleton.functions.extend(proto.functions)
    sg = skeleton.graph
    sg.name = g.name
    sg.node.extend(g.node)
    sg.output.extend(g.output)
    sg.input.extend(g.input)
    declared = {i.name for i in g.input}
    for t in g.initializer:
        if _numel(t) <= _SKELETON_MAX_ELEMENTS or t.data_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32):
            sg.initializer.append(t)
        elif t.name not in declared:
            sg.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))


def fold_constants(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Fold constant subgraphs (shape arithmetic of static shapes, transposed weights,
    `If` on a constant condition) with onnx-graphsurgeon, so analysis sees constants."""
    if not _has_foldable(proto):
        return proto
    import onnx_graphsurgeon as gs
    import onnxruntime as ort

    from onnx_graphsurgeon.logger import G_LOGGER

    G_LOGGER.severity = G_LOGGER.ERROR
    ort.set_default_logger_severity(3)
    try:
        graph = gs.import_onnx(proto)
        graph.fold_constants(flatten_subgraphs=True, error_ok=True).cleanup().toposort()
        folded = gs.export_onnx(graph, do_type_check=False)
    except Exception:  # folding is an optimisation; an exotic graph stays as it was
        return proto
    folded.ir_version = proto.ir_version
    del folded.opset_import[:]
    folded.opset_import.extend(proto.opset_import)
    return normalise(folded)


def _has_foldable(proto: onnx.ModelProto) -> bool:
    """Any node computable ahead of time: shape reads (shapes are static now) or a node all
    of whose inputs are constants. Folding costs seconds on big graphs, so skip it if none."""
    consts = {t.name for t in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type in ("Shape", "Size", "If"):
            return True
        if all(not name or name in consts for name in node.input):
            return True
    return False


def save_model(proto: onnx.ModelProto, path: str | os.PathLike) -> None:
    """Write atomically: a temporary file in the same folder, then rename."""
    from ..atomic import write_bytes

    write_bytes(path, proto.SerializeToString(deterministic=True))
