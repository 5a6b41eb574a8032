"""`edgeprune verify OUTDIR`: re-runs the artifact, re-checks hashes and gates."""

from __future__ import annotations

import json
import shutil

import pytest

from edgeprune.cli import main
from tests.pipeline.fixtures import compiled, setup  # noqa: F401


@pytest.fixture
def artifact(compiled, tmp_path):
    out = tmp_path / "artifact"
    shutil.copytree(compiled, out)
    return out


def test_verify_reruns_the_artifact_and_passes(artifact, capsys):
    assert main(["verify", str(artifact)]) == 0
    out = capsys.readouterr().out
    assert "files match their sha256" in out and "latency on" in out and "verified" in out
    # the DATA recorded at compile time is used again, on the samples compile held out
    m = json.loads((artifact / "manifest.json").read_text())
    agreement = m["fidelity"]["stages"]["artifact"]["top1_agreement"]
    assert f"fidelity vs dense: top-1 agreement {agreement:.1%}" in out
    assert "held-out samples" in out


def test_verify_gate_failure_exits_4_naming_gate_and_value(artifact, capsys):
    assert main(["verify", str(artifact), "--no-measure", "--max-size", "0.000001"]) == 4
    err = capsys.readouterr().err
    assert "--max-size" in err and "MB" in err and "failed" in err


@pytest.mark.slow
def test_verify_rechecks_the_gates_recorded_at_compile(setup, tmp_path, capsys):
    out = tmp_path / "gated"
    assert main(setup.args(out, "--budget", "0.7x", "--max-size", "100")) == 0
    m = json.loads((out / "manifest.json").read_text())
    m["gates"]["max_size"]["limit"] = 1e-6    # as if compiled with a tighter gate
    (out / "manifest.json").write_text(json.dumps(m))
    assert main(["verify", str(out), "--no-measure"]) == 4
    assert "--max-size" in capsys.readouterr().err
    # the command line overrides a recorded gate
    assert main(["verify", str(out), "--no-measure", "--max-size", "100"]) == 0


def test_a_tampered_file_exits_2(artifact, capsys):
    with open(artifact / "model.ort", "ab") as f:
        f.write(b"\0")
    assert main(["verify", str(artifact), "--no-measure"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.ort" in err[0] and "sha256" in err[0]


def test_a_folder_without_manifest_is_not_an_artifact(tmp_path, capsys):
    (tmp_path / "half").mkdir()
    assert main(["verify", str(tmp_path / "half")]) == 2
    assert "manifest.json" in capsys.readouterr().err


def test_verify_with_data_measures_fidelity_again(artifact, setup, capsys):
    assert main(["verify", str(artifact), "--no-measure", "--data", str(setup.data), "--min-fidelity", "0"]) == 0
    assert "fidelity vs dense" in capsys.readouterr().out
