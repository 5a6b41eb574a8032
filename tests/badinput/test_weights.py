"""--weights files are loaded with weights_only=True: a pickle that would run code is refused
(exit 2) and its code never runs; a state dict for another model is refused too."""

import os
import pickle
import textwrap

import pytest
import torch

from .conftest import assert_refused, run_process

FACTORY = textwrap.dedent("""
    import torch.nn as nn

    def make():
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 1))
""")


class RunsCode:
    """Unpickling this calls os.system: what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def factory(tmp_path, monkeypatch, request):
    # a fresh module name per test: imports are cached per process
    name = "tinynet_" + "".join(ch if ch.isalnum() else "_" for ch in request.node.name)
    (tmp_path / f"{name}.py").write_text(FACTORY)
    monkeypatch.chdir(tmp_path)
    return f"{name}:make"


def _prune(refused, factory, weights, out, words):
    return refused(2, "prune", factory, "--input-shape", "1x3x8x8", "--weights", weights,
                   "--ratio", "0.5", "-o", out, words=words, output=out)


def test_plain_weights_are_loaded(cli, factory, tmp_path):
    torch.manual_seed(0)
    sd = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                             torch.nn.Conv2d(8, 2, 1)).state_dict()
    torch.save(sd, tmp_path / "good.pt")
    out = tmp_path / "pruned.onnx"
    r = cli("prune", factory, "--input-shape", "1x3x8x8", "--weights", tmp_path / "good.pt",
            "--ratio", "0.5", "--round-to", "1", "-o", out)
    assert r.code == 0, r.err
    assert out.exists()


@pytest.mark.parametrize("how", ["torch.save", "raw-pickle", "inside-state-dict"])
def test_a_pickle_carrying_code_is_refused_and_never_runs(refused, factory, tmp_path, how):
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pt"
    if how == "torch.save":
        torch.save(RunsCode(marker), evil)
    elif how == "raw-pickle":
        evil.write_bytes(pickle.dumps(RunsCode(marker)))
    else:
        torch.save({"0.weight": torch.zeros(8, 3, 3, 3), "payload": RunsCode(marker)}, evil)
    out = tmp_path / "pruned.onnx"
    line = _prune(refused, factory, evil, out, words=[str(evil)])
    assert "refused" in line or "weights_only" in line or "run code" in line, line
    assert not marker.exists(), "the pickle's code ran"


def test_a_state_dict_for_another_model_is_refused(refused, factory, tmp_path):
    torch.save(torch.nn.Linear(4, 4).state_dict(), tmp_path / "other.pt")
    _prune(refused, factory, tmp_path / "other.pt", tmp_path / "pruned.onnx", words=["other.pt"])


def test_a_weights_file_that_is_not_a_checkpoint_is_refused(refused, factory, tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"\x00\x01 not a checkpoint")
    _prune(refused, factory, tmp_path / "junk.pt", tmp_path / "pruned.onnx", words=["junk.pt"])


def test_missing_weights_are_refused(refused, factory, tmp_path):
    _prune(refused, factory, tmp_path / "absent.pt", tmp_path / "pruned.onnx", words=["absent.pt"])


def test_weights_for_an_onnx_model_are_refused(refused, tiny, tmp_path):
    torch.save({}, tmp_path / "w.pt")
    out = tmp_path / "pruned.onnx"
    refused(2, "prune", tiny, "--weights", tmp_path / "w.pt", "--ratio", "0.5", "-o", out,
            words=["--weights"], output=out)


def test_a_factory_without_input_shape_is_refused(refused, factory, tmp_path):
    out = tmp_path / "pruned.onnx"
    refused(2, "prune", factory, "--ratio", "0.5", "-o", out, words=["--input-shape"], output=out)


def test_in_a_real_process_the_refusal_is_one_line_and_the_code_never_runs(factory, tmp_path):
    marker = tmp_path / "PWNED"
    (tmp_path / "evil.pt").write_bytes(pickle.dumps(RunsCode(marker), protocol=4))
    r = run_process("prune", factory, "--input-shape", "1x3x8x8", "--weights", "evil.pt",
                    "--ratio", "0.5", "-o", "pruned.onnx", cwd=tmp_path)
    assert_refused(r, 2, "evil.pt", "refused")
    assert not marker.exists()
    assert not (tmp_path / "pruned.onnx").exists()
