"""`compile --data` on detectors and segmenters (issue 22), on models of the two shapes that
failed: a YOLO-like head whose Reshapes hard-code batch 1 (was exit 1: the interpreter ran a
batch of 16 through `[1, 4, 16, 2100]`), and a segmenter whose output is [N, 1, H, W] (was
exit 2: "it needs a class axis"). Both compile with Taylor importance, and the fidelity the
report and the gate use is one that means something for them."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from edgeprune.cli import main
from edgeprune.report.manifest import errors
from tests.fidelity.models import heatmap_model, with_nms, yolo_like
from tests.pipeline.fixtures import PROFILE, UNTIMED_PROFILE

SIZE = 64   # wide enough that the convolutions, not the session overhead, set the latency
WIDTH = 32


@pytest.fixture(scope="module")
def subjects(tmp_path_factory):
    from edgeprune.devices.profile import parse_device
    from edgeprune.frontend.load import load_model
    from edgeprune.lut.api import measure_model_entries

    root = tmp_path_factory.mktemp("detectors")
    profile = root / "testhost.toml"
    profile.write_text(PROFILE)
    rng = np.random.default_rng(0)
    made = {}
    for name, proto, input_name in (("yolo", yolo_like(SIZE, width=2 * WIDTH), "images"),
                                    ("heatmap", heatmap_model(SIZE, WIDTH).proto, "x0")):
        path = root / f"{name}.onnx"
        onnx.save(proto, path)
        data = root / f"{name}.npz"
        np.savez(data, **{input_name: rng.standard_normal((24, 3, SIZE, SIZE)).astype(np.float32)})
        lut = root / f"{name}-lut.json"
        measure_model_entries(load_model(path), parse_device(str(profile)), "ort", lut)
        made[name] = (path, data, lut)
    untimed = root / "untimed.toml"    # these compiles are about the outputs, not the latency
    untimed.write_text(UNTIMED_PROFILE)
    return root, untimed, made


def _compile(subjects, name, *extra):
    root, profile, made = subjects
    path, data, lut = made[name]
    out = root / f"out-{name}-{len(extra)}"
    rc = main(["compile", str(path), "--target", str(profile), "--lut", str(lut), "--data", str(data),
               "--budget", "1.0x", "--quiet", "-o", str(out), *extra])
    return rc, out


@pytest.mark.slow
def test_a_yolo_like_detector_hard_coding_batch_1_compiles_with_data(subjects):
    rc, out = _compile(subjects, "yolo")
    assert rc == 0
    m = json.loads((out / "manifest.json").read_text())
    assert errors(m) is None
    assert m["plan"]["criterion"] == "refit"
    stage = m["fidelity"]["stages"]["artifact"]
    assert stage["metric"] == "box recall at IoU 0.5" and 0 <= stage["score"] <= 1
    assert stage["top1_agreement"] is None
    assert stage["outputs"][0]["kind"] == "detection" and stage["outputs"][0]["dense_boxes"] > 0
    report = (out / "report.md").read_text()
    assert "`--min-fidelity` judges **box recall at IoU 0.5**" in report


@pytest.mark.slow
def test_a_segmenter_with_a_one_channel_output_compiles_with_data_and_gates_on_cosine(subjects):
    rc, out = _compile(subjects, "heatmap", "--min-fidelity", "0.5")
    assert rc == 0
    m = json.loads((out / "manifest.json").read_text())
    assert errors(m) is None
    assert m["plan"]["criterion"] == "refit"
    stage = m["fidelity"]["stages"]["artifact"]
    assert stage["metric"] == "cosine similarity" and stage["outputs"][0]["shape"][1:] == [1, SIZE, SIZE]
    gate = m["gates"]["min_fidelity"]
    assert gate["passed"] and gate["value"] == pytest.approx(stage["score"])
    assert "cosine similarity" in gate["source"]
    assert "cosine similarity" in (out / "report.md").read_text()


def test_nms_inside_the_graph_is_a_clear_error_for_taylor_and_fine_for_l1(tmp_path, capsys):
    path = tmp_path / "nms.onnx"
    onnx.save(with_nms(), path)
    data = tmp_path / "data.npz"
    np.savez(data, images=np.random.default_rng(0).standard_normal((8, 3, 16, 16)).astype(np.float32))
    rc = main(["prune", str(path), "--ratio", "0.5", "--criterion", "taylor", "--data", str(data),
               "-o", str(tmp_path / "p.onnx")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "NonMaxSuppression (node 'nms')" in err and "--criterion l1" in err
    assert "Traceback" not in err
