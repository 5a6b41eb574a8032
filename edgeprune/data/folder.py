"""DATA as a folder of images (searched recursively, in sorted path order)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import UsageError
from .images import ImageLayout, Normalization, cover_crop, to_array

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())


def load_folder(folder: Path, name: str, shape: Sequence[int], size: tuple[int, int] | None,
                norm: Normalization, limit: int | None = None) -> np.ndarray:
    layout = ImageLayout.of(tuple(shape), name)
    norm.check(layout.channels)
    height, width = size or (layout.height, layout.width)
    if (height, width) != (layout.height, layout.width):
        raise UsageError(f"--image-size {height}x{width} does not match model input '{name}' "
                         f"({layout.height}x{layout.width})")
    files = image_files(folder)
    if not files:
        raise UsageError(f"{folder}: no images ({', '.join(sorted(EXTENSIONS))}) in this folder")
    if limit is not None:
        files = files[:limit]
    arrays = []
    for f in files:
        try:
            with Image.open(f) as im:
                im.load()
                arrays.append(to_array(cover_crop(im, height, width), layout.channels))
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise UsageError(f"{f}: not a readable image ({type(e).__name__})") from None
    channel_axis = 3 if layout.channels_last else 1
    return np.ascontiguousarray(norm.apply(layout.stack(arrays), channel_axis))
