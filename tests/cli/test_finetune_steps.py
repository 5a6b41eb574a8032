"""`compile --finetune-steps N`: distillation from the dense model on DATA after recovery, a
stage of its own in the manifest and report, trained weights written into the same
initializers; bad values are one-line usage errors (exit 2)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

import edgeprune
from edgeprune.cli import main
from edgeprune.errors import UsageError
from tests.pipeline.fixtures import PROFILE, UNTIMED_PROFILE

SIZE = 32


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A trained digits CNN (wide enough for a 0.7x budget to be reachable) as .onnx, DATA
    from the digits test split, and the compile tests' host profile with a LUT of its own."""
    from edgeprune.data.digits import digits
    from edgeprune.devices.profile import parse_device
    from edgeprune.frontend.export import export_module
    from edgeprune.frontend.load import load_model
    from edgeprune.lut.api import measure_model_entries
    from edgeprune.zoo.digits import train_digits_cnn

    root = tmp_path_factory.mktemp("finetune")
    module, _ = train_digits_cnn(epochs=3, width=32)
    path = export_module(module, (1, 1, SIZE, SIZE), root / "digits.onnx")
    np.savez(root / "digits.npz", input=np.array(digits("test", SIZE).images[:160]))
    profile = root / "testhost.toml"
    profile.write_text(PROFILE)
    lut = root / "lut.json"
    measure_model_entries(load_model(path), parse_device(str(profile)), "ort", lut)
    untimed = root / "untimed.toml"     # what is tested is the stage, not the latency
    untimed.write_text(UNTIMED_PROFILE)
    return path, root / "digits.npz", untimed, lut


def _args(trained, out, *extra):
    path, data, profile, lut = trained
    return ["compile", str(path), "--target", str(profile), "--lut", str(lut), "--data", str(data),
            "--budget", "0.7x", "--quiet", "-o", str(out), *extra]


@pytest.fixture(scope="module")
def finetuned(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("ft") / "out"
    # Taylor's plan leaves recovery more to restore than refit's (which can reach 100% agreement
    # on this model): something for the distillation to do, whatever the default importance
    assert main(_args(trained, out, "--finetune-steps", "150", "--criterion", "taylor")) == 0
    return out


def test_the_stage_trains_and_is_recorded(finetuned):
    m = json.loads((finetuned / "manifest.json").read_text())
    ft = m["finetune"]
    assert ft["steps"] == 150 and ft["kept"] and ft["loss_after"] < ft["loss_before"]
    assert "finetune" in m["timings_s"]
    stages = m["fidelity"]["stages"]
    # with and without, on the held-out part of DATA. The stage promises a lower loss on the
    # data it trained on (above); held out, recovery may already leave ~1% output error on this
    # model, and what distillation does there is within noise, but it must not cost fidelity
    err = {s: stages[s]["outputs"][0]["relative_error"] for s in ("recovered", "finetuned")}
    assert err["finetuned"] < err["recovered"] * 1.1
    report = (finetuned / "report.md").read_text()
    assert "| finetuned |" in report and "Fine-tuning: 150 distillation steps" in report


def test_the_artifact_has_the_pruned_shapes_and_no_masks(finetuned, trained):
    model = onnx.load(finetuned / "model.onnx")
    from edgeprune.frontend.load import load_model
    from edgeprune.graph import analyze
    from edgeprune.plan.schema import load_plan
    from edgeprune.rewrite import prune

    dense = load_model(trained[0])
    analysis = analyze(dense)
    pruned = prune(dense, analysis, load_plan(finetuned / "plan.json", dense, analysis).keep)
    shapes = lambda p: {t.name: tuple(t.dims) for t in p.graph.initializer}  # noqa: E731
    assert shapes(model) == shapes(pruned.proto)
    assert [n.op_type for n in model.graph.node] == [n.op_type for n in pruned.proto.graph.node]
    assert shapes(model) != shapes(dense.proto)    # channels were removed, not masked


@pytest.mark.parametrize("value", ["-1", "abc", "1.5"])
def test_bad_values_are_one_line_usage_errors(trained, tmp_path, capsys, value):
    out = tmp_path / "out"
    assert main(_args(trained, out, "--finetune-steps", value)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--finetune-steps" in err
    assert not out.exists()


def test_steps_without_data_are_refused(trained, tmp_path, capsys):
    path, _, profile, lut = trained
    code = main(["compile", str(path), "--target", str(profile), "--lut", str(lut), "--budget", "0.7x",
                 "--finetune-steps", "10", "--quiet", "-o", str(tmp_path / "out")])
    assert code == 2 and "--finetune-steps needs --data" in capsys.readouterr().err


def test_the_api_checks_the_value(trained, tmp_path):
    path, data, profile, lut = trained
    with pytest.raises(UsageError, match="--finetune-steps must be an integer >= 0"):
        edgeprune.compile(str(path), str(profile), "0.7x", output=tmp_path / "out", data=data, lut=lut,
                          finetune_steps=-3)


def test_the_config_file_sets_it(trained, tmp_path, capsys):
    path, data, profile, lut = trained
    cfg = tmp_path / "edgeprune.toml"
    cfg.write_text("[compile]\nfinetune-steps = -2\n")
    assert main(_args(trained, tmp_path / "out", "--config", str(cfg))) == 2
    assert "finetune-steps" in capsys.readouterr().err
