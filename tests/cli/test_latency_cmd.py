"""`edgeprune latency`: prediction from the LUT, measured beside it, estimated where unmeasured."""

import json

from edgeprune.cli import main
from tests.lut.tiny import fast_profile, tiny_onnx


def test_latency_measures_missing_entries_on_host_then_predicts_and_measures(tmp_path, capsys):
    model, profile, lut = tiny_onnx(tmp_path), fast_profile(tmp_path), tmp_path / "lut.json"
    argv = ["latency", str(model), "--device", str(profile), "--lut", str(lut), "--measure", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert lut.exists()                                  # the host LUT was measured on demand
    p, m = out["predicted"], out["measured"]
    assert p["latency_source"] == "LUT" and p["latency_ms"] > 0
    assert m["median_ms"] > 0 and m["p90_ms"] >= m["median_ms"] and m["clock"] == "cpu"
    assert p["energy_source"].startswith("estimated") or m["energy_source"]
    # predicted and measured are of the same order on the machine the LUT was measured on
    assert 0.25 < p["latency_ms"] / m["median_ms"] < 4

    assert main(["latency", str(model), "--device", str(profile), "--lut", str(lut)]) == 0
    text = capsys.readouterr().out
    assert "predicted" in text and "measured" not in text


def test_a_device_without_a_measured_lut_gets_an_estimate_marked_everywhere(tmp_path, capsys):
    model = tiny_onnx(tmp_path)
    assert main(["latency", str(model), "--device", "pixel-7", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["predicted"]["latency_source"].startswith("estimated")
    assert out["predicted"]["energy_source"].startswith("estimated") and out["lut"] is None
    assert main(["latency", str(model), "--device", "raspberry-pi-5"]) == 0
    assert "estimated" in capsys.readouterr().out


def test_measuring_on_a_remote_profile_without_address_is_a_usage_error(tmp_path, capsys):
    model = tiny_onnx(tmp_path)
    assert main(["latency", str(model), "--device", "pixel-7", "--measure"]) == 2
    assert "adb:SERIAL" in capsys.readouterr().err
