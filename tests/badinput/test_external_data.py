"""External data must stay inside the model's own folder: an absolute path, `..` or a
symlink leading out is refused (exit 2, names the tensor's file), and nothing is read or written."""

import os
import shutil

import onnx
import pytest
from onnx.external_data_helper import convert_model_to_external_data

from .conftest import tiny_proto


def _save_external(folder, location="weights.bin"):
    """tiny.onnx in `folder` with every initializer in the file `location` next to it."""
    folder.mkdir(parents=True, exist_ok=True)
    proto = tiny_proto()
    convert_model_to_external_data(proto, all_tensors_to_one_file=True, location="weights.bin",
                                   size_threshold=0)
    onnx.save_model(proto, folder / "tiny.onnx")
    if location != "weights.bin":
        _relocate(folder / "tiny.onnx", location)
    return folder / "tiny.onnx"


def _relocate(model_path, location):
    proto = onnx.load(model_path, load_external_data=False)
    for t in proto.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = location
    model_path.write_bytes(proto.SerializeToString())


def test_external_data_inside_the_folder_is_read(cli, tmp_path):
    model = _save_external(tmp_path / "m")
    out = tmp_path / "pruned.onnx"
    r = cli("prune", model, "--ratio", "0.5", "--round-to", "1", "-o", out)
    assert r.code == 0, r.err
    assert out.exists()


def test_an_absolute_external_path_is_refused(refused, tmp_path):
    model = _save_external(tmp_path / "m")
    secret = tmp_path / "secret.bin"
    shutil.copy(tmp_path / "m" / "weights.bin", secret)
    _relocate(model, str(secret))
    out = tmp_path / "pruned.onnx"
    refused(2, "prune", model, "--ratio", "0.5", "-o", out, words=[str(model), "absolute"], output=out)


def test_a_dotdot_external_path_is_refused(refused, tmp_path):
    model = _save_external(tmp_path / "m")
    shutil.copy(tmp_path / "m" / "weights.bin", tmp_path / "outside.bin")
    _relocate(model, "../outside.bin")
    out = tmp_path / "pruned.onnx"
    refused(2, "prune", model, "--ratio", "0.5", "-o", out, words=[str(model), "outside"], output=out)
    refused(2, "inspect", model, words=[str(model)])


def test_a_dotdot_inside_a_subfolder_is_refused(refused, tmp_path):
    model = _save_external(tmp_path / "m")
    (tmp_path / "m" / "sub").mkdir()
    shutil.copy(tmp_path / "m" / "weights.bin", tmp_path / "outside.bin")
    _relocate(model, "sub/../../outside.bin")
    refused(2, "inspect", model, words=[str(model), "outside"])


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_a_symlink_leading_out_of_the_folder_is_refused(refused, tmp_path):
    model = _save_external(tmp_path / "m")
    real = tmp_path / "elsewhere" / "weights.bin"
    real.parent.mkdir()
    shutil.move(tmp_path / "m" / "weights.bin", real)
    os.symlink(real, tmp_path / "m" / "weights.bin")
    out = tmp_path / "pruned.onnx"
    refused(2, "prune", model, "--ratio", "0.5", "-o", out, words=[str(model), "outside"], output=out)


def test_a_missing_external_file_is_refused(refused, tmp_path):
    model = _save_external(tmp_path / "m")
    (tmp_path / "m" / "weights.bin").unlink()
    refused(2, "inspect", model, words=[str(model), "not found"])


def test_truncated_external_data_is_refused(refused, tmp_path):
    model = _save_external(tmp_path / "m")
    data = (tmp_path / "m" / "weights.bin").read_bytes()
    (tmp_path / "m" / "weights.bin").write_bytes(data[: len(data) // 2])
    out = tmp_path / "pruned.onnx"
    refused(2, "prune", model, "--ratio", "0.5", "-o", out, words=[str(model)], output=out)
