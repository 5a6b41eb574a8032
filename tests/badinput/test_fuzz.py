"""Mutated ONNX bytes (bit flips, cut, spliced, duplicated spans): loading, analysing and
pruning either work or raise the one-line UsageError (exit 2); never another exception."""

from __future__ import annotations

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from edgeprune.errors import UsageError
from edgeprune.frontend.load import load_model_bytes
from edgeprune.graph import analyze
from edgeprune.importance import scores
from edgeprune.rewrite import prune, ratio_keep

from .conftest import tiny_proto

VALID = tiny_proto(channels=8, size=4).SerializeToString()


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(VALID)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "byte", "cut", "dup", "insert"]))
        i = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte":
            data[i] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[i:i + draw(st.integers(1, 64))]
        elif kind == "dup":
            data[i:i] = data[i:i + draw(st.integers(1, 64))]
        else:
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        if not data:
            break
    return bytes(data)


@settings(max_examples=500, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated())
def test_mutated_models_load_or_are_refused_cleanly(data):
    try:
        model = load_model_bytes(data, name="fuzzed.onnx")
        analysis = analyze(model)
        keep = ratio_keep(analysis, scores(model, analysis, "l1"), 0.5, 1)
        if keep:
            prune(model, analysis, keep)
        event("loaded and pruned")
    except UsageError as e:
        event("refused")
        assert "\n" not in str(e).strip(), "the refusal is one line"


def test_a_name_that_is_not_utf8_is_refused(refused, tmp_path):
    data = VALID.replace(b"conv1", b"\xffonv1")   # same length: the protobuf stays well formed
    bad = tmp_path / "latin.onnx"
    bad.write_bytes(data)
    refused(2, "inspect", bad, words=["latin.onnx", "utf-8"])


def test_a_weight_with_more_data_than_its_dims_is_refused(refused, tmp_path):
    proto = tiny_proto()
    w1 = proto.graph.initializer[0]
    w1.dims[3] = 2    # 8x3x3x2 = 144 values declared, 216 stored
    bad = tmp_path / "overfull.onnx"
    bad.write_bytes(proto.SerializeToString())
    out = tmp_path / "pruned.onnx"
    refused(2, "prune", bad, "--ratio", "0.5", "--round-to", "1", "-o", out, words=["overfull.onnx", "w1"],
            output=out)
