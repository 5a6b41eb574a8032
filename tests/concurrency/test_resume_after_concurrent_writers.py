"""Profiles of overlapping models written at once into one LUT lose nothing, and a resume of
the complete LUT measures nothing (refinement is not re-decided on values merged from
another writer's runs)."""

from __future__ import annotations

import re

import pytest

from edgeprune.lut.table import load_lut
from tests.faults.harness import (REPO, conv_chain, duplicated_keys, profile_command, raw_entries,
                                    start, write_quick_profile)

PASSES_2 = "[measure]\npasses = 2\n"


def _run(cmds):
    procs = [start(c, REPO) for c in cmds]
    measured = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        measured.append(int(re.search(r"(\d+) entries measured", out).group(1)))
    return measured


@pytest.mark.slow
def test_resumes_after_concurrent_profiles_of_overlapping_models_measure_nothing(tmp_path):
    profile = write_quick_profile(tmp_path)
    # two passes per entry: the second pass changes the medians refinement decided on
    profile.write_text(profile.read_text().replace("[measure]\n", PASSES_2))
    lut = tmp_path / "lut.json"
    # the same first two layers (shared signatures, same widths), different third layers
    models = [conv_chain(tmp_path / "a.onnx", 16, [32, 48, 32], [3, 1, 3]),
              conv_chain(tmp_path / "b.onnx", 16, [32, 48, 24], [3, 1, 5]),
              conv_chain(tmp_path / "c.onnx", 16, [40, 48, 32], [3, 1, 3])]
    _run([profile_command(profile, lut, m) for m in models])
    assert duplicated_keys(lut) == []
    union = len(raw_entries(lut))
    for m in models:
        assert _run([profile_command(profile, lut, m, resume=True)]) == [0], m.name
    assert len(raw_entries(lut)) == union
    # every grid a run refined is in the LUT, point by point
    table = load_lut(lut)
    for key, grid in table.grids.items():
        sig = key.rsplit("|", 1)[0]
        for ci, co in grid["points"]:
            assert table.get(sig, ci, co) is not None, (key, ci, co)
