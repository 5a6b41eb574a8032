"""The pruning invariant on every model of the zoo, through the real exporter."""

import pytest

from edgeprune import zoo
from edgeprune.frontend.export import export_module
from edgeprune.frontend.load import load_model
from edgeprune.graph import analyze
from tests.helpers import assert_invariant, half_keep

HEAVY = {"resnet50", "efficientnet_lite0", "efficientnet_lite1", "mobilenetv2", "resnet18", "mobilenetv3_small"}


# ResNet-50: ResNet-18's groups plus bottlenecks (resnext_small has those too); 17 s, so CI
# leaves it to `make test-extended`
@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow] + ([pytest.mark.extended]
                                                                            if n == "resnet50" else []))
                                  if n in HEAVY else n for n in zoo.names()])
def test_zoo_model_prunes_to_the_zeroed_reference(name, tmp_path):
    path = export_module(zoo.get(name), zoo.input_shape(name), tmp_path / f"{name}.onnx")
    model = load_model(path)
    analysis = analyze(model)
    assert analysis.prunable(), f"{name} has prunable groups"
    assert_invariant(model, half_keep(model, round_to=8), analysis=analysis)
