"""DATA: .npz keyed by model input name, or a folder of images."""

import numpy as np
import pytest
from PIL import Image

from edgeprune.data import load_data, load_data_for, parse_image_size, parse_normalization
from edgeprune.errors import UsageError

SHAPES = {"input": (1, 3, 8, 8)}


def _npz(tmp_path, **arrays):
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return path


def test_npz_arrays_come_back_as_float32_samples(tmp_path):
    x = np.random.default_rng(0).standard_normal((5, 3, 8, 8))
    data = load_data(_npz(tmp_path, input=x), ["input"], SHAPES)
    assert list(data) == ["input"]
    assert data["input"].dtype == np.float32 and data["input"].shape == (5, 3, 8, 8)
    np.testing.assert_allclose(data["input"], x.astype(np.float32))
    assert load_data(_npz(tmp_path, input=x), ["input"], SHAPES, limit=2)["input"].shape == (2, 3, 8, 8)


def test_npz_with_several_inputs_and_an_int_input(tmp_path):
    path = _npz(tmp_path, image=np.zeros((4, 3, 8, 8), np.float32), ids=np.arange(8).reshape(4, 2))
    data = load_data(path, ["image", "ids"], {"image": (1, 3, 8, 8), "ids": (1, 2)},
                     input_dtypes={"ids": np.int64})
    assert data["ids"].dtype == np.int64 and data["ids"].shape == (4, 2)


@pytest.mark.parametrize("arrays, message", [
    ({"other": np.zeros((2, 3, 8, 8))}, "no array for model input 'input' \\(keys: other\\)"),
    ({"input": np.zeros((2, 3, 8, 8)), "extra": np.zeros(2)}, "key 'extra' is not a model input"),
    ({"input": np.zeros((2, 3, 4, 4))}, "key 'input' has shape 2x3x4x4; expected N samples of 3x8x8"),
    ({"input": np.zeros((3, 8, 8))}, "key 'input' has shape 3x8x8"),
    ({"input": np.zeros((0, 3, 8, 8))}, "key 'input' has no samples"),
    ({"input": np.zeros((2, 3, 8, 8), np.int32)}, "key 'input' has dtype int32; the model input wants float32"),
    ({"input": np.full((2, 3, 8, 8), np.nan)}, "key 'input' has 384 NaN or infinite values"),
])
def test_bad_npz_names_the_file_and_the_key(tmp_path, arrays, message):
    path = _npz(tmp_path, **arrays)
    with pytest.raises(UsageError, match=f"data.npz: {message}"):
        load_data(path, ["input"], SHAPES)


def test_npz_refuses_pickled_objects_and_uneven_sample_counts(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, input=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(UsageError, match="obj.npz: key 'input'"):
        load_data(path, ["input"], {"input": (1,)})
    path = _npz(tmp_path, a=np.zeros((2, 4), np.float32), b=np.zeros((3, 4), np.float32))
    with pytest.raises(UsageError, match="different sample counts \\(a: 2, b: 3\\)"):
        load_data(path, ["a", "b"], {"a": (1, 4), "b": (1, 4)})


def test_unreadable_or_wrong_kind_of_file(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"nope")
    with pytest.raises(UsageError, match="junk.npz: not a readable .npz"):
        load_data(tmp_path / "junk.npz", ["input"], SHAPES)
    np.save(tmp_path / "one.npy", np.zeros((2, 3, 8, 8)))
    with pytest.raises(UsageError, match="one.npy: expected an .npz"):
        load_data(tmp_path / "one.npy", ["input"], SHAPES)
    with pytest.raises(UsageError, match="--data .*absent: no such file or folder"):
        load_data(tmp_path / "absent", ["input"], SHAPES)


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_image_folder_is_cover_resized_center_cropped_and_normalised(tmp_path):
    # a 20x40 image: red and blue edges, green in the middle (wider than the crop)
    wide = np.zeros((20, 40, 3), np.uint8)
    wide[:, :6, 0] = 255
    wide[:, 6:34, 1] = 255
    wide[:, 34:, 2] = 255
    _save(tmp_path / "imgs" / "b" / "wide.png", wide)
    _save(tmp_path / "imgs" / "a.png", np.full((10, 10, 3), 51, np.uint8))
    data = load_data(tmp_path / "imgs", ["input"], {"input": (1, 3, 10, 10)})["input"]
    assert data.shape == (2, 3, 10, 10) and data.dtype == np.float32
    np.testing.assert_allclose(data[0], 0.2, atol=1e-6)  # a.png first (sorted), 51/255
    # the center crop of the wide image is all green
    np.testing.assert_allclose(data[1, 1], 1.0, atol=1e-6)
    np.testing.assert_allclose(data[1, [0, 2]], 0.0, atol=1e-6)
    imagenet = load_data(tmp_path / "imgs", ["input"], {"input": (1, 3, 10, 10)},
                         mean="0.485,0.456,0.406", std=[0.229, 0.224, 0.225], limit=1)["input"]
    np.testing.assert_allclose(imagenet[0, :, 0, 0], (0.2 - np.array([0.485, 0.456, 0.406])) /
                               np.array([0.229, 0.224, 0.225]), rtol=1e-5)


def test_pixel_unit_mean_and_std_follow_the_tflite_convention(tmp_path):
    _save(tmp_path / "imgs" / "x.png", np.full((8, 8, 3), 255, np.uint8))
    data = load_data(tmp_path / "imgs", ["input"], {"input": (1, 3, 8, 8)}, mean=127, std=128)["input"]
    np.testing.assert_allclose(data, 1.0, atol=1e-6)  # (255 - 127) / 128


def test_image_folder_for_grayscale_and_channels_last_inputs(tmp_path):
    _save(tmp_path / "imgs" / "x.png", np.full((16, 12, 3), 255, np.uint8))
    gray = load_data(tmp_path / "imgs", ["input"], {"input": (1, 1, 8, 8)})["input"]
    assert gray.shape == (1, 1, 8, 8)
    nhwc = load_data(tmp_path / "imgs", ["input"], {"input": (1, 8, 8, 3)})["input"]
    assert nhwc.shape == (1, 8, 8, 3)
    with pytest.raises(UsageError, match="--mean has 3 values; the model input has 1 channels"):
        load_data(tmp_path / "imgs", ["input"], {"input": (1, 1, 8, 8)}, mean="0.4,0.4,0.4")


@pytest.mark.parametrize("setup, kwargs, message", [
    ("empty", {}, "imgs: no images"),
    ("junk", {}, "bad.png: not a readable image"),
    ("ok", {"image_size": 12}, "--image-size 12x12 does not match model input 'input' \\(8x8\\)"),
    ("ok", {"image_size": "big"}, "--image-size 'big'"),
    ("ok", {"mean": "a,b"}, "--mean 'a,b'"),
    ("ok", {"std": "0"}, "--std 0: every value must be positive"),
])
def test_bad_image_folders_and_flags(tmp_path, setup, kwargs, message):
    folder = tmp_path / "imgs"
    folder.mkdir()
    if setup == "junk":
        (folder / "bad.png").write_bytes(b"not a png")
    if setup == "ok":
        _save(folder / "x.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(UsageError, match=message):
        load_data(folder, ["input"], {"input": (1, 3, 8, 8)}, **kwargs)


def test_folder_cannot_feed_a_model_with_two_inputs(tmp_path):
    (tmp_path / "imgs").mkdir()
    with pytest.raises(UsageError, match="feeds one input; the model has 2 \\(a, b\\)"):
        load_data(tmp_path / "imgs", ["a", "b"], {"a": (1, 3, 8, 8), "b": (1, 3, 8, 8)})


def test_flag_parsers():
    assert parse_image_size("224") == (224, 224)
    assert parse_image_size("224x192") == (224, 192)
    assert parse_image_size(None) is None
    tflite = parse_normalization("127", "128")
    assert tflite.mean == pytest.approx((127 / 255,)) and tflite.std == pytest.approx((128 / 255,))
    with pytest.raises(UsageError, match="--mean has 3 values but --std has 2"):
        parse_normalization("0.1,0.2,0.3", "0.5,0.5")


def test_load_data_for_reads_names_shapes_and_dtypes_from_the_model(tmp_path):
    from edgeprune.frontend.export import export_module
    from edgeprune.frontend.load import load_model
    from edgeprune.zoo import get

    model = load_model(export_module(get("digits_cnn"), (1, 1, 32, 32), tmp_path / "d.onnx"))
    path = _npz(tmp_path, input=np.zeros((3, 1, 32, 32), np.float64))
    assert load_data_for(path, model)["input"].shape == (3, 1, 32, 32)


def test_save_npz_writes_data_that_loads_back(tmp_path):
    from edgeprune.data import digits, save_npz

    test = digits("test")
    path = save_npz(tmp_path / "sub" / "digits.npz", {"input": test.images[:10]})
    assert [p.name for p in path.parent.iterdir()] == ["digits.npz"]
    data = load_data(path, ["input"], {"input": (1, 1, 32, 32)})
    np.testing.assert_array_equal(data["input"], test.images[:10])
