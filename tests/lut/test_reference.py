"""Entries kept at one nominal speed: a reference layer timed beside each task says how fast the
shared machine ran at that moment, and the entry is scaled to the LUT's nominal speed."""

from __future__ import annotations

import math

import pytest

from edgeprune.devices.base import TaskResult
from edgeprune.devices.open import open_device
from edgeprune.lut.layers import Signature
from edgeprune.lut.profiler import Profiler
from edgeprune.lut.reference import normalized
from edgeprune.lut.session import open_writer, profile_settings
from tests.host_profile import write_host_profile

SIG = Signature(kind="conv", kernel=(3, 3), pads=(1, 1, 1, 1), in_hw=(8, 8), act="relu")


def test_a_task_timed_while_the_reference_ran_twice_as_slow_counts_half():
    r = TaskResult(id="t", ok=True, median_ms=2.0, p90_ms=3.0, reference_ms=0.4)
    assert normalized(r, nominal=0.2) == (1.0, 1.5)


@pytest.mark.parametrize("nominal, reference", [(None, 0.4), (0.2, None)])
def test_without_a_nominal_speed_or_a_reference_timing_a_result_stays_as_measured(nominal, reference):
    r = TaskResult(id="t", ok=True, median_ms=2.0, p90_ms=3.0, reference_ms=reference)
    assert normalized(r, nominal) == (2.0, 3.0)


def test_a_new_lut_gets_a_nominal_speed_and_its_entries_record_both_timings(tmp_path):
    device = open_device(str(write_host_profile(tmp_path, repeats=5, min_seconds=0.0, reference="true")))
    writer, _ = open_writer(device, "ort", tmp_path / "lut.json")
    nominal = writer.lut.header["reference_ms"]
    assert nominal > 0
    Profiler(device, writer, profile_settings(device, "ort"), workdir=tmp_path / "w").ensure([(SIG, 16, 16)])
    (run,) = writer.lut.get(SIG.key, 16, 16).runs
    assert math.isclose(run["median_ms"], run["measured_ms"] * nominal / run["reference_ms"])
