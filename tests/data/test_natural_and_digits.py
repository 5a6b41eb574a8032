"""Bundled natural-image views and the digits split."""

import numpy as np
import pytest

from edgeprune.data import digits, natural_images
from edgeprune.data.natural import base_images


def test_natural_images_are_deterministic_and_prefix_stable():
    a = natural_images(6, size=64)
    assert a.shape == (6, 3, 64, 64) and a.dtype == np.float32
    np.testing.assert_array_equal(a, natural_images(6, size=64))
    np.testing.assert_array_equal(a[:3], natural_images(3, size=64))
    assert not np.array_equal(a, natural_images(6, size=64, seed=1))


def test_views_cycle_through_distinct_pictures():
    images = base_images()
    assert len(images) >= 15 and all(im.ndim == 3 and im.shape[2] == 3 for im in images)
    views = natural_images(len(images) + 2, size=32, normalize="unit")
    flat = views.reshape(len(views), -1)
    assert len({v.tobytes() for v in flat}) == len(views)
    # the same picture seen twice is two different views (crop, flip, scale)
    assert not np.array_equal(views[0], views[len(images)])


@pytest.mark.parametrize("normalize, low, high", [("tflite", -1.0, 1.0), ("unit", 0.0, 1.0),
                                                  ("imagenet", -2.2, 2.7)])
def test_normalizations(normalize, low, high):
    x = natural_images(4, size=32, normalize=normalize)
    assert x.min() >= low - 1e-6 and x.max() <= high + 1e-6
    assert x.std() > 0.1


def test_unknown_normalization_is_refused():
    with pytest.raises(ValueError, match="normalize must be one of"):
        natural_images(1, normalize="caffe")


def test_digits_split_is_fixed_disjoint_and_stratified():
    train, test = digits("train"), digits("test")
    assert train.images.shape == (1347, 1, 32, 32) and test.images.shape == (450, 1, 32, 32)
    assert train.images.dtype == np.float32 and 0.0 <= train.images.min() and train.images.max() <= 1.0
    assert set(np.unique(test.labels)) == set(range(10))
    assert np.bincount(test.labels).min() >= 40
    train_rows = {r.tobytes() for r in digits("train", size=8).images.reshape(1347, -1)}
    overlap = sum(r.tobytes() in train_rows for r in digits("test", size=8).images.reshape(450, -1))
    assert overlap <= 5  # only pixel-identical duplicates of load_digits itself
    assert digits("test", size=16).images.shape == (450, 1, 16, 16)
