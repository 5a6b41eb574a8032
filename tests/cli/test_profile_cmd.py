"""`edgeprune profile`: measures what a model needs, resumes after a kill, refuses bad LUTs."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeprune.cli import main
from edgeprune.frontend.load import load_model
from edgeprune.lut.layers import model_layers
from edgeprune.lut.predict import LatencyModel
from edgeprune.lut.table import load_lut
from tests.lut.tiny import fast_profile, tiny_onnx

REPO = Path(__file__).resolve().parents[2]


def test_profile_measures_every_entry_the_model_needs(tmp_path, capsys):
    model, profile, lut = tiny_onnx(tmp_path), fast_profile(tmp_path), tmp_path / "lut.json"
    assert main(["profile", "--device", str(profile), "--model", str(model), "-o", str(lut)]) == 0
    out = capsys.readouterr().out
    table = load_lut(lut)
    assert table.header["device"] == "testhost" and table.channel_step == 16 and table.header["clock"] == "cpu"
    m = load_model(model)
    for layer in model_layers(m):
        assert table.get(layer.signature.key, layer.c_in, layer.c_out) is not None
    lm = LatencyModel.for_model(table, m)
    assert lm.rest_ms is not None and lm.predict_ms() > 0
    (record,) = table.models.values()   # dense and uniformly thinner variants timed whole
    assert [c["keep"] for c in record["calibration"]] == [None, 0.3, 0.5, 0.75]
    assert record["scale"] == lm.scale and 0.5 <= lm.scale <= 2.0
    # what the planner adds up is what predict_ms says
    per_layer = sum(lm.layer_ms(n, *c) for n, c in lm.dense_channels().items())
    assert lm.predict_ms() == pytest.approx(per_layer + lm.rest_ms)
    expand = model_layers(m)[1]                                   # 32 -> 64 channels
    # a thinner layer is priced from its own measured entry (sub-0.1 ms timings on a shared
    # machine are not monotone, so the test pins where the figure comes from, not its order)
    thin = lm.predict_ms({expand.node: (32, 16)})
    assert table.get(expand.signature.key, 32, 16) is not None
    assert thin == pytest.approx(lm.predict_ms() - lm.layer_ms(expand.node, 32, 64) + lm.layer_ms(expand.node, 32, 16))
    assert f"{len(table.entries)} in the LUT" in out

    # a second run without --resume measures again and merges a second run into each entry
    assert main(["profile", "--device", str(profile), "--model", str(model), "-o", str(lut)]) == 0
    again = load_lut(lut)
    dense = model_layers(m)[1]
    assert len(again.get(dense.signature.key, dense.c_in, dense.c_out).runs) == 2


def test_with_two_passes_every_entry_has_two_runs_and_the_fastest_counts(tmp_path):
    model, lut = tiny_onnx(tmp_path, width=16), tmp_path / "lut.json"
    profile = fast_profile(tmp_path, passes=2)
    assert main(["profile", "--device", str(profile), "--model", str(model), "-o", str(lut)]) == 0
    table = load_lut(lut)
    for e in table.entries.values():
        assert len(e.runs) == 2 and e.median_ms == min(r["median_ms"] for r in e.runs)


def _entries(path):
    doc = json.loads(path.read_text())
    return {(e["sig"], e["c_in"], e["c_out"]): e["runs"] for e in doc["entries"]}


@pytest.mark.slow
def test_a_killed_profile_resumes_without_losing_or_remeasuring_an_entry(tmp_path):
    model, profile, lut = tiny_onnx(tmp_path, width=96), fast_profile(tmp_path), tmp_path / "lut.json"
    cmd = [sys.executable, "-m", "edgeprune", "profile", "--device", str(profile), "--model", str(model),
           "-o", str(lut)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if lut.exists() and len(_entries(lut)) >= 6:
            break
        assert proc.poll() is None, "profile finished before it could be killed"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)   # the command and its runner, mid-measurement
    proc.wait()
    before = _entries(lut)
    assert 6 <= len(before)

    done = subprocess.run(cmd + ["--resume"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    after = _entries(lut)
    for key, runs in before.items():
        assert after[key] == runs            # kept, and not measured a second time
    new_runs = {r["run"] for key, runs in after.items() if key not in before for r in runs}
    assert len(new_runs) == 1 and not new_runs & {r["run"] for runs in before.values() for r in runs}
    assert f"{len(after) - len(before)} entries measured, {len(before)} kept from before" in done.stdout
    m = load_model(model)
    assert LatencyModel.for_model(load_lut(lut), m).predict_ms() > 0


@pytest.mark.parametrize("content", ['{"format": "edgeprune-lut", "version": 1, "head', "garbage\x00",
                                     '{"format": "edgeprune-lut", "version": 99}'])
def test_a_corrupt_lut_exits_2_with_one_line(tmp_path, capsys, content):
    model, profile, lut = tiny_onnx(tmp_path), fast_profile(tmp_path), tmp_path / "lut.json"
    lut.write_text(content)
    for argv in (["profile", "--device", str(profile), "--model", str(model), "-o", str(lut), "--resume"],
                 ["latency", str(model), "--device", str(profile), "--lut", str(lut)]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(lut) in err and "LUT" in err
    assert lut.read_text() == content        # nothing written over it
