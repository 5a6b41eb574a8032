"""DATA as an .npz: one array per model input, keyed by input name, samples on axis 0."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import UsageError, first_line


def load_npz(path: Path, input_names: Sequence[str], input_shapes: Mapping[str, Sequence[int]],
             input_dtypes: Mapping[str, np.dtype] | None = None,
             limit: int | None = None) -> dict[str, np.ndarray]:
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise UsageError(f"{path}: not a readable .npz ({first_line(e)})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise UsageError(f"{path}: a single .npy array, not an .npz keyed by model input name")
    with archive:
        keys = list(archive.files)
        for name in input_names:
            if name not in keys:
                raise UsageError(f"{path}: no array for model input '{name}' (keys: {', '.join(keys) or 'none'})")
        for key in keys:
            if key not in input_names:
                raise UsageError(f"{path}: key '{key}' is not a model input (inputs: {', '.join(input_names)})")
        data = {}
        for name in input_names:
            try:
                array = archive[name]
            except ValueError as e:  # object arrays need pickle, which stays off
                raise UsageError(f"{path}: key '{name}': {first_line(e)}") from None
            expected = np.dtype((input_dtypes or {}).get(name, np.float32))
            data[name] = _check(path, name, array, tuple(input_shapes[name]), expected, limit)
    counts = {len(a) for a in data.values()}
    if len(counts) > 1:
        sizes = ", ".join(f"{k}: {len(a)}" for k, a in data.items())
        raise UsageError(f"{path}: arrays have different sample counts ({sizes})")
    return data


def _check(path, name, array: np.ndarray, shape: tuple[int, ...], expected: np.dtype, limit) -> np.ndarray:
    sample_shape = "x".join(map(str, shape[1:])) or "scalar"
    if array.ndim != len(shape) or tuple(array.shape[1:]) != shape[1:]:
        raise UsageError(f"{path}: key '{name}' has shape {'x'.join(map(str, array.shape))}; "
                         f"expected N samples of {sample_shape} (model input {'x'.join(map(str, shape))})")
    if len(array) == 0:
        raise UsageError(f"{path}: key '{name}' has no samples")
    if np.dtype(array.dtype).kind != expected.kind and not _int_to_int(array.dtype, expected):
        raise UsageError(f"{path}: key '{name}' has dtype {array.dtype}; the model input wants {expected}")
    if limit is not None:
        array = array[:limit]
    if array.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(array)))
        if bad:
            raise UsageError(f"{path}: key '{name}' has {bad} NaN or infinite values")
    if array.dtype.kind in "iu" and array.size:
        info = np.iinfo(expected)
        if array.min() < info.min or array.max() > info.max:
            raise UsageError(f"{path}: key '{name}' has values outside the range of {expected}")
    return np.ascontiguousarray(array, dtype=expected)


def _int_to_int(found, expected: np.dtype) -> bool:
    return np.dtype(found).kind in "iu" and expected.kind in "iu"



def save_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write DATA as an .npz keyed by input name, atomically (temp file, then rename)."""
    from ..atomic import replacing

    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"{path}: DATA files end in .npz")
    with replacing(path) as tmp:
        np.savez(tmp, **{k: np.asarray(v) for k, v in arrays.items()})
    return path
