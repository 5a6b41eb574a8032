"""The runner times an entry until its median is known to ±precision (a 95% interval), not for
a fixed number of runs; a median that never settles stops at max_seconds, marked so."""

from __future__ import annotations

import importlib.util
import itertools
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from edgeprune.devices.host import RUNNER


@pytest.fixture
def runner(monkeypatch):
    spec = importlib.util.spec_from_file_location("runner_under_test", RUNNER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "device_state", lambda: {})
    return module


def timed(runner, monkeypatch, durations_ms, **task):
    """run_task on a session whose n-th run takes durations_ms[n] on a fake clock."""
    clock = [0.0]
    durations = iter(durations_ms)

    class Session:
        def input_specs(self):
            return [("x", [1], "float32")]

        def run(self, feeds):
            clock[0] += next(durations) / 1e3
            return {}

    fake_time = types.SimpleNamespace(perf_counter=lambda: clock[0], thread_time=lambda: clock[0])
    monkeypatch.setattr(runner, "time", fake_time)
    monkeypatch.setitem(sys.modules, "backend_fake", types.SimpleNamespace(load=lambda *a, **k: Session()))
    return runner.run_task({"id": "t", "backend": "fake", "model": "m.onnx", "warmup": 0,
                            "repeats": 10, "min_seconds": 0.0, **task}, job_dir=Path("/"))


def test_steady_timings_stop_at_the_minimum_repeats(runner, monkeypatch):
    r = timed(runner, monkeypatch, itertools.repeat(1.0), precision=0.02)
    assert r["count"] == 10 and r["converged"]


def test_spread_timings_run_until_the_medians_interval_is_within_the_precision(runner, monkeypatch):
    rng = np.random.default_rng(0)
    r = timed(runner, monkeypatch, iter(rng.uniform(0.8, 1.2, 100000)), precision=0.02)
    lo, hi = r["median_ci_ms"]
    assert r["converged"] and r["count"] > 10
    assert (hi - lo) / 2 <= 0.02 * r["median_ms"]


def test_a_median_that_never_settles_stops_at_max_seconds_marked_unconverged(runner, monkeypatch):
    bimodal = itertools.cycle([1.0, 2.0])   # half the runs at each: the median sits on the gap
    r = timed(runner, monkeypatch, bimodal, precision=0.02, max_seconds=0.5)
    assert not r["converged"]
    assert 0.5 <= sum(r["times_ms"]) / 1e3 < 0.51


def test_without_a_precision_the_repeats_are_fixed(runner, monkeypatch):
    rng = np.random.default_rng(0)
    r = timed(runner, monkeypatch, iter(rng.uniform(0.8, 1.2, 1000)))
    assert r["count"] == 10 and "converged" not in r


def test_the_medians_interval_narrows_as_the_sample_grows(runner):
    rng = np.random.default_rng(1)
    widths = [np.subtract(*runner.median_interval(sorted(rng.normal(1, 0.1, n))))
              for n in (20, 200, 2000)]
    assert -widths[0] > -widths[1] > -widths[2] > 0
