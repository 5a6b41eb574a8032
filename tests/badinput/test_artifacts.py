"""`verify OUTDIR` on a tampered or incomplete artifact: exit 2, one line naming what is
wrong, and the artifact is left as it was."""

from __future__ import annotations

import shutil

import pytest

from tests.faults.harness import REPO, compile_command, compile_setup, run_and_kill, staging_folders

from .conftest import files_under


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    work = compile_setup(tmp_path_factory.mktemp("artifact"))
    from .conftest import run_process

    r = run_process(*compile_command(work)[3:], cwd=REPO)
    assert r.code == 0, r.err
    return work / "out"


@pytest.fixture
def copy(artifact, tmp_path):
    return shutil.copytree(artifact, tmp_path / "out")


def _snapshot(folder):
    return {p: (folder / p).read_bytes() for p in sorted(files_under(folder)) if (folder / p).is_file()}


def test_an_intact_artifact_verifies(cli, copy):
    r = cli("verify", copy, "--no-measure")
    assert r.code == 0, r.err


TAMPERING = {
    "changed-model": (lambda d: (d / "model.onnx").write_bytes((d / "model.onnx").read_bytes() + b"\0"),
                      ["model.onnx", "sha256"]),
    "changed-report": (lambda d: (d / "report.md").write_text("all good, trust me\n"), ["report.md"]),
    "missing-model": (lambda d: (d / "model.onnx").unlink(), ["model.onnx", "missing"]),
    "corrupt-manifest": (lambda d: (d / "manifest.json").write_text("{"), ["manifest.json"]),
    "no-manifest": (lambda d: (d / "manifest.json").unlink(), ["manifest.json"]),
}


@pytest.mark.parametrize("how", sorted(TAMPERING))
def test_a_tampered_artifact_is_refused_and_left_as_it_was(refused, copy, how):
    tamper, words = TAMPERING[how]
    tamper(copy)
    before = _snapshot(copy)
    refused(2, "verify", copy, "--no-measure", words=words)
    assert _snapshot(copy) == before


def test_a_missing_or_non_folder_outdir_is_refused(refused, tmp_path):
    refused(2, "verify", tmp_path / "nowhere", words=["nowhere"])
    (tmp_path / "file").write_text("x")
    refused(2, "verify", tmp_path / "file", words=["file"])


@pytest.mark.slow
def test_a_staging_folder_left_by_a_killed_compile_is_not_an_artifact(refused, tmp_path):
    work = compile_setup(tmp_path)
    assert run_and_kill(compile_command(work), lambda: any((s / "model.onnx").exists()
                                                           for s in staging_folders(work)))
    for staging in staging_folders(work):
        refused(2, "verify", staging, "--no-measure", words=[staging.name])
