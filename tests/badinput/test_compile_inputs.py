"""`compile` on bad input: the contract's exit code, one line, and no OUTDIR (nor a staging
folder) left behind; an existing unrelated folder at OUTDIR is never touched."""

from __future__ import annotations

import json
import pickle
import textwrap

import pytest

from tests.faults.harness import copy_files

from .conftest import tiny_proto


@pytest.fixture
def work(measured_lut, tmp_path):
    return copy_files(measured_lut, tmp_path, "quickhost.toml", "tiny.onnx", "lut.json")


def _compile(work, model=None, *extra, budget="0.9x"):
    return ["compile", model or work / "tiny.onnx", "--target", work / "quickhost.toml",
            "--lut", work / "lut.json", "--budget", budget, "-o", work / "out", "--quiet", *extra]


def _nothing_written(work):
    assert not (work / "out").exists()
    assert not [p.name for p in work.iterdir() if p.name.startswith(".out")], "a staging folder was left"


def _write(work, name, data: bytes):
    (work / name).write_bytes(data)
    return work / name


BAD_MODELS = {
    "not-onnx": b"definitely not a protobuf \xff\xfe",
    "truncated": tiny_proto().SerializeToString()[:60],
    "empty": b"",
    "old-opset": tiny_proto(opset=9).SerializeToString(),
    "dynamic-spatial": tiny_proto(batch="N", size="H").SerializeToString(),
}


@pytest.mark.parametrize("kind", sorted(BAD_MODELS))
def test_a_bad_model_is_refused_and_nothing_is_written(refused, work, kind):
    bad = _write(work, f"{kind}.onnx", BAD_MODELS[kind])
    refused(2, *_compile(work, bad), words=[bad.name])
    _nothing_written(work)


@pytest.mark.parametrize("budget", ["-3ms", "0x", "abc", "3x"])
def test_a_malformed_budget_is_refused_and_nothing_is_written(refused, work, budget):
    refused(2, *_compile(work, budget=budget), words=["budget"])
    _nothing_written(work)


def test_an_infeasible_budget_exits_3_and_nothing_is_written(refused, work):
    refused(3, *_compile(work, budget="0.000001ms"), words=["smallest reachable"])
    _nothing_written(work)


def test_a_broken_lut_is_refused_and_nothing_is_written(refused, work):
    doc = json.loads((work / "lut.json").read_text())
    doc["entries"][0]["runs"][0]["median_ms"] = -1.0
    (work / "lut.json").write_text(json.dumps(doc))
    refused(2, *_compile(work), words=["lut.json"])
    _nothing_written(work)


@pytest.mark.parametrize("flags, words", [
    (["--min-fidelity", "1.5"], ["--min-fidelity"]),
    (["--max-latency", "-1"], ["--max-latency"]),
    (["--max-size", "nan"], ["--max-size"]),
    (["--quantize", "int3"], ["--quantize"]),
    (["--backend", "tensorrt"], ["--backend"]),
], ids=["fidelity", "latency", "size", "quantize", "backend"])
def test_bad_flags_are_refused_and_nothing_is_written(refused, work, flags, words):
    refused(2, *_compile(work, None, *flags), words=words)
    _nothing_written(work)


def test_an_unknown_target_is_refused(refused, work):
    args = _compile(work)
    args[args.index("--target") + 1] = "no-such-device"
    refused(2, *args, words=["no-such-device"])
    _nothing_written(work)


def test_a_non_artifact_folder_at_outdir_is_left_alone(refused, work):
    (work / "out").mkdir()
    (work / "out" / "precious.txt").write_text("mine")
    refused(2, *_compile(work), words=["out"])
    assert [p.name for p in (work / "out").iterdir()] == ["precious.txt"]


def test_a_code_carrying_weights_file_is_refused_and_never_runs(refused, work, monkeypatch):
    (work / "tinyfactory_compile.py").write_text(textwrap.dedent("""
        import torch.nn as nn

        def make():
            return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 1))
    """))
    marker = work / "PWNED"

    class RunsCode:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {marker}",))

    (work / "evil.pt").write_bytes(pickle.dumps(RunsCode()))
    monkeypatch.chdir(work)
    refused(2, *_compile(work, "tinyfactory_compile:make", "--input-shape", "1x3x8x8",
                         "--weights", work / "evil.pt"), words=["evil.pt"])
    assert not marker.exists()
    _nothing_written(work)
