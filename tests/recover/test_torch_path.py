"""The PyTorch path: a plan applied to the user's module gives a physically smaller module
with the same names that computes what the pruned ONNX model computes; distillation
fine-tuning moves it towards the dense model; it re-exports to ONNX."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeprune.errors import UsageError
from edgeprune.frontend.load import load_model
from edgeprune.graph import analyze
from edgeprune.recover.finetune import FinetuneOptions, export, finetune
from edgeprune.recover.torch_apply import apply_plan
from edgeprune.rewrite import prune
from tests.helpers import export as export_onnx, half_keep, run
from tests.recover.models import conv_net


@pytest.fixture(scope="module")
def planned():
    module = conv_net()
    dense = export_onnx(module, (1, 3, 16, 16))
    analysis = analyze(dense)
    keep = half_keep(dense)
    return module, dense, analysis, keep


def test_applied_plan_matches_the_pruned_onnx_model(planned):
    module, dense, analysis, keep = planned
    small = apply_plan(module, analysis, keep)
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    want = run(prune(dense, analysis, keep).proto, {"x0": x})[0]
    with torch.no_grad():
        got = small(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert set(small.state_dict()) == set(module.state_dict())
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(small) < 0.6 * n(module)
    assert small.dw[0].groups == small.dw[0].out_channels == small.expand[0].out_channels < 32
    assert small.fc.in_features == small.head[0].out_channels
    # the user's module is untouched
    assert module.dw[0].groups == 32


def test_a_plan_for_another_module_is_refused(planned):
    _, _, analysis, keep = planned
    with pytest.raises(UsageError, match="another module|not a parameter"):
        apply_plan(conv_net(width=8), analysis, keep)


def test_distillation_moves_the_pruned_module_towards_the_dense_one(planned, tmp_path):
    module, dense, analysis, keep = planned
    small = apply_plan(module, analysis, keep)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((256, 3, 16, 16)).astype(np.float32)
    held = torch.from_numpy(rng.standard_normal((64, 3, 16, 16)).astype(np.float32))

    def gap(m):
        with torch.no_grad():
            return float(((m(held) - module(held)) ** 2).mean())

    before = gap(small)
    result = finetune(small, module, x, options=FinetuneOptions(epochs=4, lr=3e-3, batch_size=32))
    assert result.losses[-1] < result.losses[0]
    assert gap(result.module) < 0.5 * before
    path = export(result.module, (1, 3, 16, 16), tmp_path / "small.onnx")
    reloaded = load_model(path)
    got = run(reloaded.proto, {"input": held[:1].numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, result.module(held[:1]).numpy(), rtol=1e-4, atol=1e-4)


def test_finetune_checks_labels_match_inputs(planned):
    module = planned[0]
    with pytest.raises(UsageError, match="labels"):
        finetune(module, module, np.zeros((4, 3, 16, 16), np.float32), np.zeros(3, np.int64))


def test_finetune_is_reachable_from_the_package():
    import edgeprune

    assert edgeprune.finetune is finetune
