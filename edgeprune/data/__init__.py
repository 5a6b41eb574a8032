"""DATA for calibration, importance, reconstruction and fidelity checks.

    load_data(spec, input_names, input_shapes, ...) -> {input name: (N, ...) array}
        from an .npz keyed by model input name, or a folder of images
    natural_images(n, size, seed, normalize)        -> bundled natural-image views
    digits(split, size)                             -> scikit-learn digits, upsampled
    save_npz(path, {input name: array})             -> write DATA atomically
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import UsageError
from .digits import Digits, digits
from .folder import load_folder
from .images import Normalization, parse_image_size, parse_normalization
from .natural import natural_images
from .npz import load_npz, save_npz


def load_data(spec: str | os.PathLike, model_input_names: Sequence[str],
              input_shapes: Mapping[str, Sequence[int]], image_size=None, mean=None, std=None,
              limit: int | None = None,
              input_dtypes: Mapping[str, np.dtype] | None = None) -> dict[str, np.ndarray]:
    """Samples for each model input, first axis = samples.

    An .npz must hold exactly one array per input, shaped (N, *input_shape[1:]), of the
    input's dtype kind (float32 unless `input_dtypes` says otherwise), with no NaN/inf. A
    folder gives images for a single image input: resized to cover `image_size` (default:
    the input's own height and width), center-cropped and normalised by `mean`/`std`
    (see `parse_normalization`). `limit` keeps the first N samples."""
    path = Path(spec)
    if limit is not None and limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    missing = [n for n in model_input_names if n not in input_shapes]
    if missing:
        raise ValueError(f"no shape for model inputs {missing}")
    if not path.exists():
        raise UsageError(f"--data {path}: no such file or folder")
    if path.is_dir():
        if len(model_input_names) != 1:
            raise UsageError(f"--data {path}: a folder of images feeds one input; the model has "
                             f"{len(model_input_names)} ({', '.join(model_input_names)}): use an .npz")
        name = model_input_names[0]
        norm = parse_normalization(mean, std)
        size = parse_image_size(image_size)
        return {name: load_folder(path, name, input_shapes[name], size, norm, limit)}
    if path.suffix.lower() != ".npz":
        raise UsageError(f"--data {path}: expected an .npz keyed by input name or a folder of images")
    return load_npz(path, list(model_input_names), input_shapes, input_dtypes, limit)


def load_data_for(spec: str | os.PathLike, model, **kwargs) -> dict[str, np.ndarray]:
    """`load_data` with the input names, shapes and dtypes of a frontend `Model` (duck-typed:
    DATA sits below the frontend, which reads the zoo, which reads DATA)."""
    import onnx
    from onnx.helper import tensor_dtype_to_np_dtype

    names = list(model.input_shapes)   # the graph inputs that are not initializers, in order
    dtypes = {i.name: tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type)
              for i in model.proto.graph.input if i.name in names
              and i.type.tensor_type.elem_type != onnx.TensorProto.UNDEFINED}
    return load_data(spec, names, model.input_shapes, input_dtypes=dtypes, **kwargs)


__all__ = ["load_data", "load_data_for", "save_npz", "natural_images", "digits", "Digits", "Normalization",
           "parse_normalization", "parse_image_size"]
