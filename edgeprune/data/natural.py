"""Deterministic natural-image views from pictures that ship inside scikit-image and
scikit-learn (no download): random crops, flips and rescalings, for calibration,
importance, reconstruction and fidelity checks when the user gives no DATA."""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

from .images import IMAGENET, TFLITE, UNIT, Normalization

# bundled with scikit-image (the others need pooch and a download)
_SKIMAGE_COLOR = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
                  "immunohistochemistry", "retina")
_SKIMAGE_GRAY = ("camera", "coins", "moon", "clock", "brick", "grass", "gravel", "page")
_SKLEARN = ("china.jpg", "flower.jpg")

NORMALIZATIONS: dict[str, Normalization] = {"tflite": TFLITE, "imagenet": IMAGENET, "unit": UNIT}


@functools.lru_cache(maxsize=1)
def base_images() -> tuple[np.ndarray, ...]:
    """The source pictures as HxWx3 uint8, colour ones first, in a fixed order."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    sample = load_sample_images()
    by_name = dict(zip((f.rsplit("/", 1)[-1] for f in sample.filenames), sample.images))
    color = [getattr(skimage.data, n)() for n in _SKIMAGE_COLOR] + [by_name[n] for n in _SKLEARN]
    gray = [np.repeat(getattr(skimage.data, n)()[:, :, None], 3, axis=2) for n in _SKIMAGE_GRAY]
    images = tuple(np.ascontiguousarray(im[:, :, :3], dtype=np.uint8) for im in color + gray)
    for im in images:
        im.setflags(write=False)
    return images


def natural_images(n: int, size: int = 224, seed: int = 0, normalize: str = "tflite") -> np.ndarray:
    """`n` views as (n, 3, size, size) float32, normalised as "tflite" ((p-127)/128),
    "imagenet" (mean/std) or "unit" (p/255).

    View i comes from picture i mod P (P pictures): a square crop of 40-100% of the short
    side at a random place, flipped half the time, resized to `size`. The same (seed,
    size) give the same views, and the first k of n views equal natural_images(k).
    """
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {', '.join(NORMALIZATIONS)}, not {normalize!r}")
    if n < 0 or size <= 0:
        raise ValueError(f"natural_images needs n >= 0 and size > 0, got n={n}, size={size}")
    images = base_images()
    rng = np.random.default_rng(seed)
    views = []
    for i in range(n):
        image = images[i % len(images)]
        # always draw the same four numbers per view so a prefix of views never changes
        fraction, fx, fy, flip = rng.uniform(0.4, 1.0), rng.random(), rng.random(), rng.random() < 0.5
        h, w = image.shape[:2]
        side = max(1, int(round(fraction * min(h, w))))
        top, left = int(fy * (h - side)), int(fx * (w - side))
        crop = Image.fromarray(image[top:top + side, left:left + side])
        if flip:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        views.append(np.asarray(crop.resize((size, size), Image.BILINEAR)))
    if not views:
        return np.zeros((0, 3, size, size), np.float32)
    batch = np.stack(views).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(NORMALIZATIONS[normalize].apply(batch, channel_axis=1))
