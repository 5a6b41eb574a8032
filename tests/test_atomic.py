"""Writes that a reader or a kill midway never sees half of (edgeprune/atomic.py)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeprune.atomic import replacing, write_bytes, write_text


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with replacing(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]


def test_the_temporary_keeps_the_suffix_writers_choose_a_format_by(tmp_path):
    path = tmp_path / "data.npz"
    with replacing(path) as tmp:
        assert tmp.suffix == ".npz" and tmp.parent == tmp_path
        np.savez(tmp, x=np.arange(3))
    assert np.load(path)["x"].tolist() == [0, 1, 2]


def test_text_and_bytes_replace_the_file_and_make_its_folder(tmp_path):
    assert write_text(tmp_path / "a" / "t.txt", "new", fsync=True).read_text() == "new"
    assert write_bytes(tmp_path / "a" / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    assert write_text(tmp_path / "a" / "t.txt", "newer").read_text() == "newer"
