"""What the gates see comes from one function (verify.measured_from) for `compile` and for
`verify OUTDIR`: the two once drifted, one passing a latency gate on a roofline estimate."""

import pytest

from edgeprune.gates import evaluate
from edgeprune.verify import Rerun, measured_from


def manifest(measured_ms=None, estimated=True):
    return {"latency_ms": {"measured_median": measured_ms, "measured_on": "host" if measured_ms else None,
                           "predicted": 1.0, "estimated": estimated},
            "energy_mj": {"measured": None, "predicted": 2.0, "predicted_source": "estimated"},
            "verify": {"deployed_files": [], **({} if measured_ms else {"not_measured": "no address"})},
            "fidelity": None}


def rerun(**info):
    return Rerun({"deployed_files": [], **info}, "adb:R5CT", None, None)


@pytest.mark.parametrize("again", [None, rerun(not_measured="no address"), rerun()])
def test_an_estimate_passes_no_latency_gate_at_compile_or_at_verify(tmp_path, again):
    m = measured_from(manifest(), tmp_path, again)
    assert m.latency_ms is None and "a prediction cannot pass a latency gate" in m.latency_source
    assert not evaluate({"max_latency": 1000.0}, m)[0].passed


def test_a_timing_now_wins_and_no_measure_keeps_the_compile_measurement(tmp_path):
    m = manifest(measured_ms=3.0, estimated=False)
    assert measured_from(m, tmp_path).latency_ms == 3.0
    assert measured_from(m, tmp_path, rerun(measured_median_ms=2.5)).latency_ms == 2.5
    kept = measured_from(m, tmp_path, rerun())   # --no-measure: the same bytes, timed at compile
    assert kept.latency_ms == 3.0 and "at compile time" in kept.latency_source


def test_energy_measured_now_then_at_compile_then_predicted(tmp_path):
    m = manifest()
    assert measured_from(m, tmp_path).energy_source == "predicted (estimated)"
    m["energy_mj"].update(measured=1.5, measured_source="rapl")
    assert measured_from(m, tmp_path, rerun()).energy_source == "measured at compile (rapl)"
    assert measured_from(m, tmp_path, rerun(energy_mj=1.2, energy_source="rapl")).energy_mj == 1.2
