"""The artifact directory appears complete or not at all; an existing one is replaced only
by a complete new one."""

from __future__ import annotations

import json
import os

import pytest

from edgeprune.errors import UsageError
from edgeprune.outdir import ArtifactDir, check_outdir, file_hashes, sha256_file


def _build(out, files: dict[str, str], fail: bool = False):
    with ArtifactDir(out) as d:
        for name, text in files.items():
            (d.path / name).parent.mkdir(parents=True, exist_ok=True)
            (d.path / name).write_text(text)
        assert not out.exists() or (out / "manifest.json").exists()
        if fail:
            raise RuntimeError("a stage failed")
        d.commit({"format": "test"})


def test_commit_writes_files_and_a_manifest_with_their_hashes_last(tmp_path):
    out = tmp_path / "out"
    _build(out, {"model.onnx": "m", "plots/a.png": "p"})
    m = json.loads((out / "manifest.json").read_text())
    assert m["files"] == {"model.onnx": sha256_file(out / "model.onnx"), "plots/a.png": sha256_file(out / "plots/a.png")}
    assert m["files"] == file_hashes(out)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_failure_before_commit_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        _build(tmp_path / "out", {"model.onnx": "m"}, fail=True)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_outdir_survives_a_failure_and_is_replaced_on_success(tmp_path):
    out = tmp_path / "out"
    _build(out, {"model.onnx": "old", "extra.txt": "old"})
    with pytest.raises(RuntimeError):
        _build(out, {"model.onnx": "new"}, fail=True)
    assert (out / "model.onnx").read_text() == "old"
    _build(out, {"model.onnx": "new"})
    assert (out / "model.onnx").read_text() == "new" and not (out / "extra.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_staging_left_by_a_killed_run_is_removed_by_the_next(tmp_path):
    dead = tmp_path / ".out.edgeprune-999999999-abcd"   # no such pid
    dead.mkdir()
    (dead / "model.onnx").write_text("half")
    _build(tmp_path / "out", {"model.onnx": "m"})
    assert not dead.exists()


def test_check_outdir_refuses_files_and_foreign_folders(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        check_outdir(tmp_path / "file")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not an edgeprune artifact"):
        check_outdir(tmp_path / "foreign")
    (tmp_path / "empty").mkdir()
    assert check_outdir(tmp_path / "empty") == tmp_path / "empty"


def test_staging_is_a_hidden_sibling_on_the_same_filesystem(tmp_path):
    with ArtifactDir(tmp_path / "out") as d:
        assert d.path.parent == tmp_path and d.path.name.startswith(".out.edgeprune-")
        assert os.stat(d.path).st_dev == os.stat(tmp_path).st_dev
