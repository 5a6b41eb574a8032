"""The zoo builds the real architectures, deterministically, in eval mode."""

import pytest
import torch
from torch import nn

import edgeprune.zoo as zoo
from edgeprune.errors import UsageError

ALL = zoo.names()


def test_registry_lists_every_model_with_an_input_shape():
    assert set(ALL) == {"resnet18", "resnet50", "mobilenetv2", "mobilenetv3_small",
                        "efficientnet_lite0", "efficientnet_lite1", "unet_small", "csp_neck", "csp_yolo", "resnext_small",
                        "vit_tiny", "digits_cnn"}
    for name in ALL:
        assert zoo.input_shape(name)[0] == 1
        assert zoo.find(zoo.factory(name)) == name
    assert zoo.input_shape("resnet50") == (1, 3, 224, 224)
    assert zoo.input_shape("digits_cnn") == (1, 1, 32, 32)
    assert zoo.entry("efficientnet_lite0").normalize == "tflite"
    assert zoo.entry("efficientnet_lite0").pretrained
    # only models with trained weights may stand in a fidelity table
    assert zoo.pretrained_names() == ["mobilenetv2", "efficientnet_lite0", "efficientnet_lite1"]
    assert not zoo.entry("resnet18").pretrained


def test_unknown_name_is_a_usage_error_listing_known_ones():
    with pytest.raises(UsageError, match="unknown zoo model 'resnet19'.*resnet18"):
        zoo.get("resnet19")


@pytest.mark.parametrize("name", ALL)
def test_model_is_in_eval_mode_runs_and_is_deterministic(name):
    before = torch.random.get_rng_state()
    a, b = zoo.get(name), zoo.get(name)
    assert torch.equal(torch.random.get_rng_state(), before), "building must not touch the global RNG"
    assert not a.training
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    x = torch.randn(zoo.input_shape(name), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = a(x)
    assert torch.isfinite(y).all()
    assert y.shape[0] == 1


@pytest.mark.parametrize("name, params", [
    # torchvision's published parameter counts: the same architectures
    ("resnet18", 11_689_512), ("resnet50", 25_557_032), ("mobilenetv2", 3_504_872),
    ("mobilenetv3_small", 2_542_856), ("efficientnet_lite0", 4_652_008)])
def test_imagenet_models_are_the_real_architectures(name, params):
    model = zoo.get(name)
    assert sum(p.numel() for p in model.parameters()) == params
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)


def test_num_classes_changes_the_classifier():
    for name in ("resnet18", "mobilenetv2", "vit_tiny", "digits_cnn", "resnext_small"):
        model = zoo.get(name, num_classes=7)
        with torch.no_grad():
            assert model(torch.zeros(zoo.input_shape(name))).shape == (1, 7)


def test_batchnorm_statistics_are_not_the_identity():
    bn = zoo.get("resnet18").bn1
    assert bn.weight.std() > 0.1 and bn.running_var.std() > 0.1 and bn.running_mean.abs().max() > 0


def test_mobilenetv3_has_hardswish_and_squeeze_excite():
    model = zoo.get("mobilenetv3_small")
    kinds = {type(m).__name__ for m in model.modules()}
    assert {"Hardswish", "Hardsigmoid", "SqueezeExcitation"} <= kinds
    se = next(m for m in model.modules() if type(m).__name__ == "SqueezeExcitation")
    assert isinstance(se.avgpool, nn.AdaptiveAvgPool2d) and isinstance(se.fc1, nn.Conv2d)


def test_resnext_uses_grouped_3x3_convs():
    for groups in (8, 32):
        model = zoo.get("resnext_small", groups=groups)
        grouped = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
        assert grouped and all(m.groups == groups and m.kernel_size == (3, 3) for m in grouped)


def test_unet_output_keeps_the_input_resolution():
    with torch.no_grad():
        assert zoo.get("unet_small")(torch.zeros(1, 3, 64, 64)).shape == (1, 2, 64, 64)


def test_vit_attention_is_written_out_by_hand():
    model = zoo.get("vit_tiny")
    assert not any(isinstance(m, nn.MultiheadAttention) for m in model.modules())
    assert any(isinstance(m, nn.LayerNorm) for m in model.modules())
    assert model.cls_token.shape == (1, 1, 64) and model.pos_embed.shape == (1, 17, 64)


def test_resnext_block_is_another_name_for_resnext_small():
    assert zoo.resnext_block is zoo.resnext_small
    assert zoo.find(zoo.resnext_block) == "resnext_small"
