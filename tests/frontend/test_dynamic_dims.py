"""Models as real exporters write them (issue 21): a dynamic dim is a dim_param (PyTorch), a
`dim_value: -1` (Paddle2ONNX), a `dim_value: 0` (some converters) or neither field set, on
inputs, outputs and value_info alike. Each is dynamic everywhere a shape is read,
--input-shape fills it, and the model inspects, prunes, plans and compiles; the artifact runs
in ONNX Runtime with the original's output shapes."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeprune.cli import main
from edgeprune.errors import UsageError
from edgeprune.frontend.load import load_model
from edgeprune.frontend.shapes import declared_dims, dims_text
from edgeprune.graph import analyze
from edgeprune.lut.layers import model_layers
from tests.pipeline.fixtures import PROFILE

H, W = 16, 48           # the size we compile for (a text-line crop, like PaddleOCR's 48x192)
SHAPE = f"1x3x{H}x{W}"
STYLES = ("-1", "0", "unset", "param")


def _dim(dims, d, style, prefix):
    """Append one dim: an int is static, None is dynamic in `style`."""
    dim = dims.add()
    if d is not None:
        dim.dim_value = d
    elif style == "param":
        dim.dim_param = f"{prefix}{len(dims) - 1}"
    elif style in ("-1", "0"):
        dim.dim_value = int(style)
    # "unset": neither dim_value nor dim_param


def _vi(name, dims, style, elem=TensorProto.FLOAT):
    vi = helper.make_tensor_value_info(name, elem, None)
    shape = vi.type.tensor_type.shape
    for k, d in enumerate(dims):
        _dim(shape.dim, d, style if not isinstance(style, tuple) else style[k], "d" if name == "x" else f"{name}_")
    return vi


def exporter_model(style, batch_style=None, seed=0, opset=11, c1=8, c2=16) -> onnx.ModelProto:
    """A PaddleOCR-style text-direction classifier as Paddle2ONNX writes it: weights in Constant
    nodes, batch/height/width dynamic, flatten written as Reshape [0, -1], an upsample by
    Resize scales, and value_info that repeats the dynamic dims."""
    rng = np.random.default_rng(seed)
    nodes = []

    def const(name, arr):
        nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(arr, name)))
        return name

    def w(name, *shape):
        return const(name, (rng.standard_normal(shape) * 0.3).astype(np.float32))

    bn = [w("bn_s", c1), w("bn_b", c1), w("bn_m", c1), const("bn_v", (rng.random(c1) + 0.5).astype(np.float32))]
    nodes += [
        helper.make_node("Conv", ["x", w("w1", c1, 3, 3, 3)], ["c1"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("BatchNormalization", ["c1", *bn], ["n1"]),
        helper.make_node("Relu", ["n1"], ["r1"]),
        helper.make_node("Conv", ["r1", w("w2", c2, c1, 3, 3), w("b2", c2)], ["c2"], pads=[1, 1, 1, 1],
                         strides=[2, 2], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Resize", ["r2", const("roi", np.zeros(0, np.float32)),
                                    const("scales", np.array([1, 1, 2, 2], np.float32))], ["up"], mode="nearest"),
        helper.make_node("Conv", ["up", w("w3", c2, c2, 1, 1), w("b3", c2)], ["c3"], kernel_shape=[1, 1]),
        helper.make_node("Relu", ["c3"], ["r3"]),
        helper.make_node("GlobalAveragePool", ["r3"], ["g"]),
        helper.make_node("Reshape", ["g", const("flat", np.array([0, -1], np.int64))], ["f"]),
        helper.make_node("MatMul", ["f", w("w4", c2, 2)], ["m"]),
        helper.make_node("Add", ["m", w("b4", 2)], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["y"], axis=1),
    ]
    b = batch_style or style
    io_style = (b, style, style, style)
    value_info = [_vi("c1", [None, c1, None, None], io_style), _vi("r2", [None, c2, None, None], io_style),
                  _vi("up", [None, c2, None, None], io_style), _vi("f", [None, c2], (b, style)),
                  _vi("logits", [None, 2], (b, style))]
    graph = helper.make_graph(nodes, "paddle_cls", [_vi("x", [None, 3, None, None], io_style)],
                              [_vi("y", [None, 2], (b, style))], value_info=value_info)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="PaddlePaddle")
    model.ir_version = 7
    return model


def _write(tmp_path, model, name="model.onnx"):
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return path


def _static(vi) -> bool:
    dims = declared_dims(vi)
    return dims is not None and all(d is not None for d in dims)


def _runnable(model: onnx.ModelProto) -> onnx.ModelProto:
    """The original, to run for reference. ORT reads `dim_value: 0` as a size, not as dynamic:
    it refuses a feed against such an input and fails a Reshape whose value_info says 0; the
    reference gets names for those dims instead (edgeprune reads them as dynamic)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for vi in [*out.graph.input, *out.graph.value_info, *out.graph.output]:
        for k, d in enumerate(vi.type.tensor_type.shape.dim):
            if d.HasField("dim_value") and d.dim_value == 0:
                d.dim_param = f"{vi.name}_dyn{k}"
    return out


def _ort_output_shapes(model_or_path, x) -> list[tuple[int, ...]]:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    src = model_or_path.SerializeToString() if isinstance(model_or_path, onnx.ModelProto) else str(model_or_path)
    sess = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
    return [o.shape for o in sess.run(None, {sess.get_inputs()[0].name: x})]


# ---- load: --input-shape fills dynamic dims, the refusal names the dims still needed -------------
@pytest.mark.parametrize("style", STYLES)
def test_input_shape_fills_every_kind_of_dynamic_dim(style, tmp_path):
    model = load_model(_write(tmp_path, exporter_model(style)), {"x": (1, 3, H, W)})
    assert model.input_shapes == {"x": (1, 3, H, W)}
    g = model.proto.graph
    assert all(_static(vi) for vi in [*g.input, *g.output, *g.value_info]), \
        [(vi.name, dims_text(vi.type.tensor_type.shape.dim)) for vi in g.value_info if not _static(vi)]
    assert declared_dims(g.output[0]) == (1, 2)
    # LUT signatures: the convs see the compiled size (the stride-2 conv's output is resized
    # back up by 2), the linear layer one row
    keys = [layer.signature.key for layer in model_layers(model)]
    assert len(keys) == 4 and all(f"|{H}x{W}|" in k for k in keys[:3]) and keys[3].startswith("linear|m1|")


@pytest.mark.parametrize("style", STYLES)
def test_without_input_shape_the_refusal_names_the_dims_still_needed(style, tmp_path):
    path = _write(tmp_path, exporter_model(style))
    with pytest.raises(UsageError) as e:
        load_model(path)
    msg = str(e.value)
    assert "input 'x'" in msg and "--input-shape" in msg
    if style == "param":
        assert "d2 (axis 2) and d3 (axis 3)" in msg and "1x3x<d2>x<d3>" in msg
    else:
        assert "axis 2 and axis 3" in msg and "1x3x<axis2>x<axis3>" in msg
        assert "[?, 3, ?, ?]" in msg          # -1, 0 and unset all read as dynamic, not as sizes
    assert "axis 0" not in msg.split("must give")[1]   # a dynamic batch defaults to 1


def test_paddle_question_mark_dims_are_named_by_axis(tmp_path):
    """PaddleOCR's classifier (rapidocr-onnxruntime) declares x as [-1, 3, "?", "?"]."""
    model = exporter_model("-1")
    for d in model.graph.input[0].type.tensor_type.shape.dim[2:]:
        d.dim_param = "?"
    with pytest.raises(UsageError) as e:
        load_model(_write(tmp_path, model))
    assert "dynamic dims [?, 3, ?, ?]: --input-shape must give axis 2 and axis 3" in str(e.value)


@pytest.mark.parametrize("style", ("-1", "0", "unset"))
def test_a_dynamic_batch_alone_needs_no_input_shape(style, tmp_path):
    model = exporter_model("param", batch_style=style)
    x = model.graph.input[0].type.tensor_type.shape.dim
    x[2].dim_value, x[3].dim_value = H, W     # setting dim_value clears the dim_param
    assert load_model(_write(tmp_path, model)).input_shapes == {"x": (1, 3, H, W)}


def test_input_shape_must_agree_with_the_static_dims(tmp_path):
    path = _write(tmp_path, exporter_model("-1"))
    with pytest.raises(UsageError, match=r"input 'x' has shape \[\?, 3, \?, \?\] \(axis 1 is 3\), "
                                         r"--input-shape gives 1x4x16x48"):
        load_model(path, {"x": (1, 4, H, W)})
    with pytest.raises(UsageError, match="rank 4, --input-shape gives rank 3"):
        load_model(path, {"x": (3, H, W)})


def test_several_inputs_name_each_input_and_its_dims(tmp_path):
    """Two inputs, one with a dynamic width (-1), one with a dynamic length (unset)."""
    a = _vi("a", [None, 3, 8, None], ("-1", "-1", "-1", "-1"))
    b = _vi("b", [1, None], ("unset", "unset"))
    w = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "w")
    nodes = [helper.make_node("Conv", ["a", "w"], ["y"], kernel_shape=[1, 1]),
             helper.make_node("Relu", ["b"], ["z"])]
    graph = helper.make_graph(nodes, "two", [a, b], [_vi("y", [None, 4, 8, None], "-1"),
                                                    _vi("z", [1, None], "0")], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = _write(tmp_path, model)
    with pytest.raises(UsageError) as e:
        load_model(path)
    msg = str(e.value)
    assert "input 'a' has dynamic dims [?, 3, 8, ?]: --input-shape must give axis 3" in msg
    assert "input 'b' has dynamic dims [1, ?]: --input-shape must give axis 1" in msg
    assert "a:1x3x8x<axis3>,b:1x<axis1>" in msg
    loaded = load_model(path, {"a": (1, 3, 8, 5), "b": (1, 7)})
    assert loaded.input_shapes == {"a": (1, 3, 8, 5), "b": (1, 7)}


def test_weights_listed_as_inputs_with_dynamic_dims_keep_their_real_dims(tmp_path):
    """Older exporters list weights among the graph inputs, and write dynamic dims there too:
    shapes downstream come from the weights, and the pruned model declares its sliced weights."""
    model = exporter_model("-1")
    model = onnx.ModelProto.FromString(model.SerializeToString())
    from edgeprune.frontend.load import normalise

    model = normalise(model)     # Constant nodes → initializers, as older exports have them
    model.graph.input.append(_vi("w2", [None, 8, 3, 3], "-1"))
    model.graph.input.append(_vi("w3", [None, None, 1, 1], "unset"))
    path = _write(tmp_path, model)
    loaded = load_model(path, {"x": (1, 3, H, W)})
    assert all(_static(vi) for vi in [*loaded.proto.graph.value_info, *loaded.proto.graph.output])
    assert len(analyze(loaded).prunable()) == 3
    out = tmp_path / "pruned.onnx"
    assert main(["prune", str(path), "--input-shape", SHAPE, "--ratio", "0.5", "--round-to", "1",
                 "-o", str(out)]) == 0
    pruned = onnx.load(out)
    declared = {i.name: declared_dims(i) for i in pruned.graph.input}
    weights = {t.name: tuple(t.dims) for t in pruned.graph.initializer}
    assert declared["w2"] == weights["w2"] and declared["w2"][0] < 16
    x = np.random.default_rng(1).standard_normal((1, 3, H, W)).astype(np.float32)
    assert _ort_output_shapes(pruned, x) == _ort_output_shapes(_runnable(model), x)


# ---- the CLI: inspect, prune, plan, compile -------------------------------------------------------
@pytest.mark.parametrize("style", STYLES)
def test_inspect_and_prune_through_the_cli(style, tmp_path, capsys):
    model = exporter_model(style)
    src, out = _write(tmp_path, model), tmp_path / "pruned.onnx"
    assert main(["inspect", str(src)]) == 2
    assert "--input-shape must give" in capsys.readouterr().err
    assert main(["inspect", str(src), "--input-shape", SHAPE, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["prunable_groups"] == 3
    assert main(["prune", str(src), "--input-shape", SHAPE, "--ratio", "0.5", "--round-to", "1",
                 "-o", str(out)]) == 0, capsys.readouterr().err
    onnx.checker.check_model(onnx.load(out))
    x = np.random.default_rng(0).standard_normal((1, 3, H, W)).astype(np.float32)
    assert _ort_output_shapes(out, x) == _ort_output_shapes(_runnable(model), x) == [(1, 2)]


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    """This host with a fixed channel step, and a LUT file shared by the tests below."""
    root = tmp_path_factory.mktemp("device")
    (root / "testhost.toml").write_text(PROFILE)
    return root / "testhost.toml", root / "lut.json"


@pytest.mark.slow
def test_plan_and_prune_by_plan(device, tmp_path, capsys):
    profile, lut = device
    src = _write(tmp_path, exporter_model("unset", batch_style="-1"))
    plan = tmp_path / "plan.json"
    assert main(["plan", str(src), "--input-shape", SHAPE, "--device", str(profile), "--lut", str(lut),
                 "--budget", "1.0x", "-o", str(plan)]) == 0, capsys.readouterr().err
    assert json.loads(plan.read_text())["groups"]
    out = tmp_path / "pruned.onnx"
    assert main(["prune", str(src), "--input-shape", SHAPE, "--plan", str(plan), "-o", str(out)]) == 0, \
        capsys.readouterr().err
    onnx.checker.check_model(onnx.load(out))


# compile times the artifact against the dense model: big enough (a few ms) that timing noise
# stays well inside the pipeline's tolerance, at the size PaddleOCR's classifier runs at
COMPILE_SHAPE, COMPILE_WIDTHS = "1x3x48x192", {"c1": 16, "c2": 32}


def _mixed() -> onnx.ModelProto:
    """As in the issue: batch `dim_value: -1`, height a dim_param, width unset; value_info and
    output with 0."""
    model = exporter_model("param", batch_style="-1", **COMPILE_WIDTHS)
    x = model.graph.input[0].type.tensor_type.shape.dim
    x[3].Clear()
    for vi in [*model.graph.value_info, *model.graph.output]:
        vi.type.tensor_type.shape.dim[0].Clear()
        vi.type.tensor_type.shape.dim[0].dim_value = 0
    return model


@pytest.mark.slow
@pytest.mark.parametrize("build", [_mixed, lambda: exporter_model("0", **COMPILE_WIDTHS)], ids=["mixed", "zero"])
def test_compile_to_host_and_the_artifact_runs_with_the_original_output_shapes(build, device, tmp_path, capsys):
    profile, lut = device
    model = build()
    src, out = _write(tmp_path, model), tmp_path / "dist"
    rc = main(["compile", str(src), "--input-shape", COMPILE_SHAPE, "--target", str(profile), "--lut", str(lut),
               "--budget", "1.0x", "--quiet", "-o", str(out)])
    assert rc == 0, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["input_shape"] == COMPILE_SHAPE
    x = np.random.default_rng(2).standard_normal((1, 3, 48, 192)).astype(np.float32)
    want = _ort_output_shapes(_runnable(model), x)
    for name in ("model.onnx", "model.opt.onnx", "model.ort"):
        assert _ort_output_shapes(out / name, x) == want, name
    assert main(["verify", str(out)]) == 0, capsys.readouterr().err


# ---- the device runner ------------------------------------------------------------------------
def test_the_runner_fills_dynamic_dims_from_the_task_and_names_those_it_cannot(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    runner = Path(__file__).resolve().parents[2] / "runtimes" / "runner.py"
    _write(tmp_path, exporter_model("-1"), "dyn.onnx")
    np.savez(tmp_path / "in.npz", x=np.ones((2, 3, H, W), np.float32))
    base = {"backend": "ort", "model": "dyn.onnx", "warmup": 0, "repeats": 1, "min_seconds": 0}
    tasks = [{**base, "id": "random", "inputs": "random"},
             {**base, "id": "given", "inputs": "random", "input_shapes": {"x": [2, 3, H, W]},
              "save_outputs": "given.npz"},
             {**base, "id": "data", "inputs": "in.npz", "save_outputs": "data.npz"},
             {**base, "id": "clash", "inputs": "random", "input_shapes": {"x": [1, 4, H, W]}}]
    (tmp_path / "job.json").write_text(json.dumps({"version": 1, "results": "results.jsonl", "tasks": tasks}))
    proc = subprocess.run([sys.executable, str(runner), str(tmp_path / "job.json")], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rec = {r["id"]: r for r in map(json.loads, (tmp_path / "results.jsonl").read_text().splitlines())}
    assert not rec["random"]["ok"] and "dynamic dims at axes 2, 3" in rec["random"]["error"]
    assert rec["given"]["ok"] and np.load(tmp_path / "given.npz")["y"].shape == (2, 2)
    # the data gives height and width; a dynamic batch runs one sample, as a static batch of 1 does
    assert rec["data"]["ok"] and np.load(tmp_path / "data.npz")["y"].shape == (1, 2)
    assert not rec["clash"]["ok"] and "?x3x?x?" in rec["clash"]["error"]


# ---- other shape readers real exports reach -------------------------------------------------
@pytest.mark.parametrize("how", ["scales", "sizes"])
def test_resize_naming_its_axes_prunes_and_keeps_the_invariant(how):
    """Opset 18 Resize with `axes`: scales/sizes hold one entry per named axis, not per dim."""
    from tests.helpers import assert_invariant

    rng = np.random.default_rng(3)
    w1 = numpy_helper.from_array(rng.standard_normal((6, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((2, 6, 1, 1)).astype(np.float32), "w2")
    arg = (numpy_helper.from_array(np.array([2, 2], np.float32), "scales") if how == "scales"
           else numpy_helper.from_array(np.array([8, 8], np.int64), "sizes"))
    resize_in = ["c", "", "scales"] if how == "scales" else ["c", "", "", "sizes"]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Resize", resize_in, ["r"], mode="nearest", axes=[-2, -1]),
             helper.make_node("Conv", ["r", "w2"], ["y"], kernel_shape=[1, 1])]
    graph = helper.make_graph(nodes, "resize_axes", [_vi("x", [None, 3, 4, 4], "-1")],
                              [_vi("y", [None, 2, 8, 8], "-1")], [w1, w2, arg])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    from edgeprune.frontend.load import load_model_bytes

    loaded = load_model_bytes(model.SerializeToString())
    analysis = analyze(loaded)
    [group] = analysis.prunable()
    assert group.channels == 6
    assert_invariant(loaded, {group.id: [0, 2, 5]}, analysis=analysis)
