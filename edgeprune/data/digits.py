"""scikit-learn's handwritten digits (8x8, 1797 samples), upsampled for small CNNs, with one
fixed stratified train/test split shared by training and every check."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

TEST_FRACTION = 0.25
SPLIT_SEED = 0  # the split never depends on a training seed: test data stays unseen


@dataclass(frozen=True)
class Digits:
    images: np.ndarray  # (N, 1, size, size) float32 in [0, 1]
    labels: np.ndarray  # (N,) int64 in 0..9


@functools.lru_cache(maxsize=8)
def _split(split: str, size: int) -> Digits:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if split not in ("train", "test"):
        raise ValueError(f"digits split must be 'train' or 'test', not {split!r}")
    bunch = load_digits()
    images = bunch.images.astype(np.float32) / 16.0
    train_idx, test_idx = train_test_split(np.arange(len(images)), test_size=TEST_FRACTION,
                                           random_state=SPLIT_SEED, stratify=bunch.target)
    idx = np.sort(train_idx if split == "train" else test_idx)
    x = upsample(images[idx], size)[:, None]
    x.setflags(write=False)
    y = bunch.target[idx].astype(np.int64)
    y.setflags(write=False)
    return Digits(images=x, labels=y)


def upsample(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of (N, h, w) images to (N, size, size), float32."""
    from skimage.transform import resize

    n = len(images)
    out = resize(images, (n, size, size), order=1, mode="edge", anti_aliasing=False,
                 preserve_range=True)
    return np.ascontiguousarray(out, dtype=np.float32)


def digits(split: str = "train", size: int = 32) -> Digits:
    """The train (75%) or test (25%) part of load_digits, as (N, 1, size, size) float32
    images in [0, 1] and int64 labels. Arrays are read-only (shared cache): copy to edit."""
    return _split(split, int(size))
