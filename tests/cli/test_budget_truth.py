"""What ships is what was measured: one runtime configuration for the LUT, the dense reference
and the artifact; a closed loop that corrects a plan the LUT got wrong, or exits 3; int8
artifacts whose convolutions stayed float exit 4; latency gates never pass on a prediction."""

from __future__ import annotations

import json
import shutil

import pytest

from edgeprune.cli import main
from tests.pipeline.fixtures import setup  # noqa: F401

pytestmark = pytest.mark.slow


def _lut_copy(setup, tmp_path, edit) -> str:
    doc = json.loads(setup.lut.read_text())
    edit(doc)
    path = tmp_path / "edited-lut.json"
    path.write_text(json.dumps(doc))
    return str(path)


def _scale_layers(factor):
    """Every layer entry timed `factor` times its real latency: a LUT that is simply wrong."""
    def edit(doc):
        for e in doc["entries"]:
            _scaled(e, factor)
        for key, rec in doc.get("models", {}).items():
            if key.endswith(":shipped-dense"):
                continue
            rec["rest_ms"] = 0.0
            rec["scale"] = 1.0
    return edit


def _pruning_priced_free(doc):
    """Each layer priced right at its largest channel counts and nearly free at any smaller
    ones: the LUT sees the whole model right (measuring it corrects nothing), but takes any
    pruning for almost all of a layer's time."""
    full: dict[str, tuple[int, int]] = {}
    for e in doc["entries"]:
        c_in, c_out = full.get(e["sig"], (0, 0))
        full[e["sig"]] = (max(c_in, e["c_in"]), max(c_out, e["c_out"]))
    doc["entries"] = [e for e in doc["entries"] if (e["c_in"], e["c_out"]) == full[e["sig"]]] + \
        [_scaled(e, 1e-4) for e in doc["entries"] if (e["c_in"], e["c_out"]) != full[e["sig"]]]


def _scaled(entry, factor):
    for r in entry["runs"]:
        r["median_ms"] *= factor
        r["p90_ms"] *= factor
    entry["median_ms"] *= factor
    entry["p90_ms"] *= factor
    return entry


def _args(setup, out, lut, *extra):
    return ["compile", str(setup.onnx), "--target", str(setup.profile), "--lut", lut, "--quiet",
            "-o", str(out), *extra]


def test_a_lut_measured_under_another_runtime_configuration_is_refused(setup, tmp_path, capsys):
    def other_level(doc):
        doc["header"]["runtime"]["optimization"] = "extended"

    lut = _lut_copy(setup, tmp_path, other_level)
    out = tmp_path / "out"
    assert main(_args(setup, out, lut, "--budget", "0.6x")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "runtime configuration" in err[0] and "'extended' vs 'all'" in err[0]
    assert not out.exists()


def test_a_lut_that_recorded_no_configuration_is_refused(setup, tmp_path, capsys):
    lut = _lut_copy(setup, tmp_path, lambda doc: doc["header"].pop("runtime"))
    assert main(_args(setup, tmp_path / "out", lut, "--budget", "0.6x")) == 2
    assert "records no runtime configuration" in capsys.readouterr().err


def test_a_lut_that_predicts_too_fast_is_corrected_by_measuring_the_shipped_artifact(setup, tmp_path):
    """Layers priced at 40% of their real cost: planned at the target, the plan would keep far
    too much; the dense model as it ships, measured beside the LUT's prediction of it, scales
    the first plan's limit, and any miss left is re-planned against the measurement."""
    lut = _lut_copy(setup, tmp_path, _scale_layers(0.4))
    out = tmp_path / "out"
    rc = main(_args(setup, out, lut, "--budget", "0.6x"))
    if rc == 3:   # no plan met the budget within the rounds: said, with the measured figure
        return
    assert rc == 0
    m = json.loads((out / "manifest.json").read_text())
    loop = m["latency_ms"]["closed_loop"]
    whole, first = loop["whole_model"], loop["rounds"][0]
    assert whole["measured_ms"] > 1.5 * whole["predicted_ms"]       # the LUT is seen to be fast ...
    assert first["limit_ms"] < 0.7 * loop["target_ms"]              # ... so the plan aims below the target
    assert loop["measured_ms"] <= 1.05 * loop["target_ms"]          # and the shipped one meets it
    assert m["latency_ms"]["measured_median"] <= m["latency_ms"]["dense_measured"]
    report = (out / "report.md").read_text()
    assert "Plans fitted on the device" in report and "Runtime configuration" in report
    # one table row per round: a pruned candidate names the dense timing beside it
    assert report.count("beside it") == sum(not r.get("dense_plan") for r in loop["rounds"])


def test_a_budget_no_measured_plan_meets_exits_3_with_the_measured_figure(setup, tmp_path, capsys):
    """A LUT that takes any pruning for nearly all of a layer's time plans almost the dense
    model for any budget; the device says it is twice too slow, and no correction can fix a
    LUT whose plans all keep nearly everything."""
    lut = _lut_copy(setup, tmp_path, _pruning_priced_free)
    out = tmp_path / "out"
    assert main(_args(setup, out, lut, "--budget", "0.5x")) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "measured" in err[0] and "ms" in err[0]
    assert not out.exists()


def test_plan_measure_exits_3_when_no_plan_meets_the_budget(setup, tmp_path, capsys):
    lut = _lut_copy(setup, tmp_path, _pruning_priced_free)
    out = tmp_path / "plan.json"
    rc = main(["plan", str(setup.onnx), "--device", str(setup.profile), "--lut", lut, "--budget", "0.5x",
               "--measure", "-o", str(out)])
    assert rc == 3
    assert "is not met" in capsys.readouterr().err
    assert not out.exists()


def test_an_int8_compile_whose_convolutions_stayed_float_exits_4_naming_them(setup, tmp_path, capsys,
                                                                             monkeypatch):
    import edgeprune.quantize as quantize

    # a quantizer that silently left the model in float
    monkeypatch.setattr(quantize, "quantize_int8", lambda model, calib, method="minmax", **kw: model)
    out = tmp_path / "out"
    rc = main(_args(setup, out, str(setup.lut), "--budget", "0.9x", "--quantize", "int8",
                    "--data", str(setup.data)))
    err = capsys.readouterr().err
    assert rc == 4
    assert "--quantize int8" in err and "float" in err and "Conv" in err
    m = json.loads((out / "manifest.json").read_text())
    assert m["gates"]["int8_kernels"]["passed"] is False
    assert m["kernels"]["float_convs"]


def test_an_int8_compile_runs_integer_convolutions_and_records_the_runtime_ops(setup, tmp_path):
    out = tmp_path / "out"
    assert main(_args(setup, out, str(setup.lut), "--budget", "0.9x", "--quantize", "int8",
                      "--data", str(setup.data))) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["gates"]["int8_kernels"]["passed"] is True
    assert m["kernels"]["float_convs"] == []
    assert any("QLinearConv" in op or "ConvInteger" in op for op in m["kernels"]["ops"])
    # priced on int8 entries: the LUT now holds them
    sigs = json.loads(setup.lut.read_text())["signatures"]
    assert any(key.endswith("|int8") for key in sigs)


def test_verify_never_passes_a_latency_gate_on_a_prediction(setup, tmp_path, capsys):
    """A device reached over adb with no serial cannot be timed: compile builds the artifact
    with a predicted latency, and a latency gate on it fails (exit 4), saying why."""
    profile = tmp_path / "phone.toml"
    profile.write_text(setup.profile.read_text().replace('kind = "local"', 'kind = "adb"'))
    out = tmp_path / "out"
    assert main(["compile", str(setup.onnx), "--target", str(profile), "--lut", str(setup.lut), "--quiet",
                 "--budget", "0.6x", "-o", str(out)]) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["latency_ms"]["measured_median"] is None and m["latency_ms"]["closed_loop"]["not_measured"]
    capsys.readouterr()
    moved = tmp_path / "downloaded"
    shutil.copytree(out, moved)
    assert main(["verify", str(moved), "--max-latency", "1000"]) == 4
    err = capsys.readouterr().err
    assert "--max-latency" in err and "prediction cannot pass" in err
