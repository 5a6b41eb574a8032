"""MODEL files that are not usable ONNX: exit 2, one line naming the file, nothing written."""

import io
import zipfile

import onnx
import pytest
from onnx import helper

from .conftest import tiny_proto

COMMANDS = ("prune", "inspect")


def _args(command, model, out):
    return [command, model] + (["--ratio", "0.5", "-o", out] if command == "prune" else [])


@pytest.fixture(params=COMMANDS)
def command(request):
    return request.param


@pytest.mark.parametrize("content, words", [
    (b"", ["empty"]),
    (b"\x08\x96\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", ["not a valid onnx"]),
    (b"hello, I am a text file\n", ["not a valid onnx"]),
    (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, ["not a valid onnx"]),
], ids=["empty", "malformed-protobuf", "text", "png"])
def test_a_file_that_is_not_onnx_is_refused(refused, tmp_path, out, command, content, words):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(content)
    refused(2, *_args(command, bad, out), words=[str(bad)] + words, output=out)


def test_a_truncated_onnx_is_refused(refused, tmp_path, out, command):
    whole = tiny_proto().SerializeToString()
    for cut in (len(whole) // 2, len(whole) - 7, 40):
        bad = tmp_path / f"cut{cut}.onnx"
        bad.write_bytes(whole[:cut])
        refused(2, *_args(command, bad, out), words=[str(bad)], output=out)


def test_a_pytorch_zip_given_as_model_is_refused(refused, tmp_path, out, command):
    bad = tmp_path / "weights.onnx"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    bad.write_bytes(buf.getvalue())
    refused(2, *_args(command, bad, out), words=[str(bad)], output=out)


def test_a_missing_file_or_a_folder_is_refused(refused, tmp_path, out, command):
    refused(2, *_args(command, tmp_path / "nope.onnx", out), words=["nope.onnx"], output=out)
    folder = tmp_path / "folder.onnx"
    folder.mkdir()
    refused(2, *_args(command, folder, out), words=["folder.onnx"], output=out)


@pytest.mark.parametrize("opset", [7, 10, 99])
def test_an_unsupported_opset_is_refused_naming_it(refused, tmp_path, out, command, opset):
    bad = tmp_path / "old.onnx"
    bad.write_bytes(tiny_proto(opset=opset).SerializeToString())
    refused(2, *_args(command, bad, out), words=[str(bad), f"opset {opset}"], output=out)


def test_a_model_the_checker_rejects_is_refused(refused, tmp_path, out, command):
    proto = tiny_proto()
    proto.graph.node[1].input[0] = "undefined_tensor"
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(proto.SerializeToString())
    refused(2, *_args(command, bad, out), words=[str(bad)], output=out)


def test_a_dynamic_batch_is_accepted(cli, tmp_path, out):
    model = tmp_path / "dyn_batch.onnx"
    model.write_bytes(tiny_proto(batch="N").SerializeToString())
    r = cli("prune", model, "--ratio", "0.5", "--round-to", "1", "-o", out)
    assert r.code == 0, r.err
    pruned = onnx.load(out)
    assert [d.dim_value for d in pruned.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 4, 4]
    w1 = next(t for t in pruned.graph.initializer if t.name == "w1")
    assert w1.dims[0] == 4


def test_a_dynamic_spatial_size_needs_input_shape(refused, cli, tmp_path, out, command):
    model = tmp_path / "dyn_hw.onnx"
    model.write_bytes(tiny_proto(batch="N", size="H").SerializeToString())
    line = refused(2, *_args(command, model, out), words=[str(model), "--input-shape"], output=out)
    assert "dynamic" in line
    r = cli(*_args(command, model, out), "--input-shape", "1x3x8x8")
    assert r.code == 0, r.err


@pytest.mark.parametrize("shape", ["abc", "1x3x0x8", "1x3x8", "1x-3x8x8", "2x3x4x4"])
def test_a_bad_input_shape_is_refused(refused, tmp_path, out, command, shape):
    model = tmp_path / "dyn_hw.onnx"
    model.write_bytes(tiny_proto(batch=1, size="H").SerializeToString())
    refused(2, *_args(command, model, out), "--input-shape", shape, words=["--input-shape"], output=out)


@pytest.mark.parametrize("flags, words", [
    (["--ratio", "0"], ["--ratio"]),
    (["--ratio", "1.5"], ["--ratio"]),
    (["--ratio", "-0.5"], ["--ratio"]),
    (["--ratio", "nan"], ["--ratio"]),
    (["--ratio", "abc"], ["--ratio"]),
    (["--ratio", "0.5", "--round-to", "0"], ["--round-to"]),
    (["--ratio", "0.5", "--criterion", "magic"], ["--criterion"]),
    (["--ratio", "0.5", "--criterion", "taylor"], ["--data"]),
    ([], ["--ratio", "--plan"]),
], ids=["ratio0", "ratio1.5", "ratio-neg", "ratio-nan", "ratio-abc", "round0", "criterion", "taylor-no-data",
        "neither"])
def test_bad_prune_flags_are_refused(refused, tiny, out, flags, words):
    refused(2, "prune", tiny, *flags, "-o", out, words=words, output=out)


def test_a_bad_output_path_is_refused(refused, tiny, tmp_path):
    folder = tmp_path / "a_folder.onnx"
    folder.mkdir()
    refused(2, "prune", tiny, "--ratio", "0.5", "-o", folder, words=["-o"])
    refused(2, "prune", tiny, "--ratio", "0.5", "-o", tmp_path / "pruned.txt", words=["-o"],
            output=tmp_path / "pruned.txt")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    refused(2, "prune", tiny, "--ratio", "0.5", "-o", blocker / "pruned.onnx", words=["-o"])


def test_a_model_whose_input_has_no_shape_is_refused(refused, tmp_path, out, command):
    # the ONNX checker itself requires a shape on graph inputs
    proto = tiny_proto()
    proto.graph.input[0].type.tensor_type.ClearField("shape")
    model = tmp_path / "noshape.onnx"
    model.write_bytes(proto.SerializeToString())
    refused(2, *_args(command, model, out), words=[str(model)], output=out)


def test_no_default_domain_opset_is_refused(refused, tmp_path, out, command):
    proto = tiny_proto()
    del proto.opset_import[:]
    proto.opset_import.append(helper.make_opsetid("com.example", 1))
    model = tmp_path / "nodomain.onnx"
    model.write_bytes(proto.SerializeToString())
    refused(2, *_args(command, model, out), words=[str(model), "opset"], output=out)


def _edit(tmp_path, name, edit):
    proto = tiny_proto()
    edit(proto)
    path = tmp_path / name
    path.write_bytes(proto.SerializeToString())
    return path


def _claim_dims(dims):
    def edit(proto):
        t = proto.graph.initializer[0]
        del t.dims[:]
        t.dims.extend(dims)
    return edit


def _mismatched_weight(proto):
    """w2 expects 5 input channels; conv1 makes 8: shapes cannot be inferred."""
    import numpy as np
    from onnx import numpy_helper
    w2 = next(t for t in proto.graph.initializer if t.name == "w2")
    w2.CopyFrom(numpy_helper.from_array(np.ones((2, 5, 1, 1), np.float32), "w2"))


def _short_bias(proto):
    import numpy as np
    from onnx import numpy_helper
    b1 = next(t for t in proto.graph.initializer if t.name == "b1")
    b1.CopyFrom(numpy_helper.from_array(np.ones(5, np.float32), "b1"))


def _cycle(proto):
    proto.graph.node[0].input[0] = "r"     # conv1 reads relu's output: a loop


@pytest.mark.parametrize("name, edit, words", [
    ("huge.onnx", _claim_dims([1 << 20, 1 << 20, 3, 3]), ["huge.onnx"]),   # claims 40 TB of weights
    ("lying.onnx", _claim_dims([9, 3, 3, 3]), ["lying.onnx"]),            # more filters than it holds
    ("mismatch.onnx", _mismatched_weight, ["conv2", "w2"]),   # ONNX shape inference misses this
    ("bias.onnx", _short_bias, ["conv1", "b1"]),
    ("cycle.onnx", _cycle, ["cycle.onnx"]),
], ids=["huge-claimed-dims", "dims-larger-than-data", "inconsistent-shapes", "short-bias", "cycle"])
def test_a_model_whose_tensors_lie_is_refused_without_allocating(refused, tmp_path, out, command, name, edit,
                                                                  words):
    bad = _edit(tmp_path, name, edit)
    refused(2, *_args(command, bad, out), words=words, output=out)


def _two_inputs(tmp_path):
    """a and b (both N x 3 x H x W) concatenated into a conv."""
    import numpy as np
    from onnx import TensorProto, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 6, 1, 1), np.float32), "w")
    nodes = [helper.make_node("Concat", ["a", "b"], ["c"], axis=1, name="cat"),
             helper.make_node("Conv", ["c", "w"], ["y"], name="conv")]
    dyn = ["N", 3, "H", "W"]
    graph = helper.make_graph(nodes, "two", [helper.make_tensor_value_info("a", TensorProto.FLOAT, dyn),
                                             helper.make_tensor_value_info("b", TensorProto.FLOAT, dyn)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, "H", "W"])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "two.onnx"
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("shape, words", [
    ("1x3x8x8", ["name each", "a", "b"]),
    ("a:1x3x8x8", ["'b'", "--input-shape"]),
    ("a:1x3x8x8,bb:1x3x8x8", ["'bb'", "a, b"]),
    ("a:1x3x8x8,b:1x4x8x8", ["'b'", "1x4x8x8"]),
    ("a:1x3x8x8,a:1x3x8x8", ["--input-shape"]),
], ids=["bare", "one-missing", "misspelt", "wrong-channels", "twice"])
def test_input_shapes_of_a_two_input_model_must_name_each_input(refused, tmp_path, out, command, shape, words):
    refused(2, *_args(command, _two_inputs(tmp_path), out), "--input-shape", shape, words=words, output=out)


def test_a_two_input_model_with_named_shapes_is_accepted(cli, tmp_path, out):
    r = cli("inspect", _two_inputs(tmp_path), "--input-shape", "a:1x3x8x8,b:1x3x8x8")
    assert r.code == 0, r.err
