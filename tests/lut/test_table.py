"""The LUT file: schema, round trip, merge of runs, refusal of bad files, concurrent writers."""

import json
import multiprocessing
import math

import pytest

from edgeprune.errors import UsageError
from edgeprune.lut.layers import Signature
from edgeprune.lut.table import Lut, LutWriter, load_lut, parse_lut, write_lut

HEADER = {"device": "host", "backend": "ort", "fingerprint": "cpu-x", "threads": 1, "clock": "cpu",
          "channel_step": 16}
SIG = Signature(kind="conv", kernel=(3, 3), pads=(1, 1, 1, 1), in_hw=(14, 14), act="relu")


def run(ms, count=10, run_id="r1", energy=None):
    rec = {"median_ms": ms, "p90_ms": ms * 1.1, "count": count, "run": run_id, "at": "2026-01-01T00:00:00+00:00"}
    if energy is not None:
        rec["energy_mj"], rec["energy_source"] = energy, "rapl"
    return rec


def small_lut(tmp_path):
    lut = Lut(header=dict(HEADER))
    lut.add(SIG, 16, 16, run(0.1))
    lut.add(SIG, 16, 32, run(0.2, energy=0.5))
    path = tmp_path / "lut.json"
    write_lut(lut, path)
    return path


def test_round_trip_keeps_entries_signatures_and_header(tmp_path):
    lut = load_lut(small_lut(tmp_path))
    assert lut.header == HEADER and lut.channel_step == 16
    assert lut.signature(SIG.key) == SIG
    e = lut.get(SIG.key, 16, 32)
    assert (e.median_ms, e.count, e.energy_mj, e.energy_source) == (0.2, 10, 0.5, "rapl")
    assert math.isclose(e.p90_ms, 0.22)


def test_runs_of_one_entry_merge_into_the_fastest_run_and_summed_count(tmp_path):
    a = load_lut(small_lut(tmp_path))
    b = Lut(header=dict(HEADER))
    b.add(SIG, 16, 16, run(0.3, count=5, run_id="r2"))
    b.add(SIG, 16, 16, run(0.2, count=5, run_id="r3"))
    b.add(SIG, 32, 32, run(0.4, run_id="r2"))
    a.merge(b)
    e = a.get(SIG.key, 16, 16)
    assert len(e.runs) == 3 and e.median_ms == 0.1 and e.count == 20 and math.isclose(e.p90_ms, 0.11)
    assert a.get(SIG.key, 32, 32).median_ms == 0.4
    a.merge(b)  # merging the same runs again changes nothing
    assert len(a.get(SIG.key, 16, 16).runs) == 3


def test_merging_a_lut_of_another_cpu_is_refused(tmp_path):
    a = load_lut(small_lut(tmp_path))
    other = Lut(header={**HEADER, "fingerprint": "cpu-y"})
    with pytest.raises(UsageError, match="fingerprint"):
        a.merge(other, "other.json")


@pytest.mark.parametrize("mutate, message", [
    (lambda text: text[: len(text) // 2], "truncated LUT"),
    (lambda text: "{\x00garbage" + text, "corrupt LUT"),
    (lambda text: text.replace('"version":1', '"version":7'), "LUT version 7 is not supported"),
    (lambda text: text.replace('"format":"edgeprune-lut"', '"format":"x"'), "not an edgeprune LUT"),
    (lambda text: text.replace('"median_ms":0.2', '"median_ms":NaN'), "non-finite"),
    (lambda text: text.replace('"median_ms":0.2', '"median_ms":-0.2'), "entries/1/runs/0/median_ms"),
    (lambda text: text.replace('"c_in":16', '"c_in":"sixteen"', 1), "entries/0/c_in"),
])
def test_bad_lut_files_are_one_line_usage_errors_naming_the_file(tmp_path, mutate, message):
    path = small_lut(tmp_path)
    path.write_text(mutate(path.read_text()))
    with pytest.raises(UsageError) as err:
        load_lut(path)
    text = str(err.value)
    assert str(path) in text and message in text and "\n" not in text


def test_an_entry_pointing_at_an_unknown_signature_is_named(tmp_path):
    path = small_lut(tmp_path)
    doc = json.loads(path.read_text())
    doc["entries"][1]["sig"] = "conv|nope"
    with pytest.raises(UsageError, match=r"entries/1: unknown signature"):
        parse_lut(json.dumps(doc), "x.json")


def test_writer_refuses_a_nan_measurement_before_writing(tmp_path):
    path = small_lut(tmp_path)
    before = path.read_bytes()
    w = LutWriter(path, HEADER)
    with pytest.raises(UsageError, match="median_ms"):
        w.add(SIG, 48, 48, run(float("nan")))
    assert path.read_bytes() == before


def _writer_process(path, start):
    w = LutWriter(path, HEADER)
    for c in range(start, start + 10):
        w.add(SIG, 16, c, run(0.01 * c, run_id=f"p{start}"))


def test_concurrent_writers_lose_no_entry(tmp_path):
    path = tmp_path / "shared.json"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer_process, args=(path, s)) for s in (100, 200, 300)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    lut = load_lut(path)
    assert {(ci, co) for (_, ci, co) in lut.entries} == {(16, c) for s in (100, 200, 300) for c in range(s, s + 10)}
    assert not list(tmp_path.glob(".shared.json.tmp*"))


def test_inside_deferred_a_writer_saves_at_most_that_often_and_everything_when_it_ends(tmp_path):
    path = small_lut(tmp_path)
    w = LutWriter(path, HEADER)
    with pytest.raises(RuntimeError):
        with w.deferred(3600):
            w.add(SIG, 32, 16, run(0.3))     # the first change since the last save is saved
            w.add(SIG, 32, 32, run(0.4))     # ... the next ones wait
            assert load_lut(path).get(SIG.key, 32, 16) is not None
            assert load_lut(path).get(SIG.key, 32, 32) is None
            raise RuntimeError("the device was lost")
    assert load_lut(path).get(SIG.key, 32, 32).median_ms == 0.4   # saved however it ended


@pytest.mark.parametrize("field, value", [("p90_ms", 0), ("count", 0), ("energy_mj", -1.0), ("run", 7)])
def test_a_bad_run_is_refused_naming_where_it_is(tmp_path, field, value):
    doc = json.loads(small_lut(tmp_path).read_text())
    doc["entries"][1]["runs"][0][field] = value
    with pytest.raises(UsageError, match=rf"entries/1/runs/0/{field}"):
        parse_lut(json.dumps(doc), "x.json")
