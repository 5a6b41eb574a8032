"""The bad-input contract: exit code, one clear line on stderr, no traceback, nothing written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeprune.cli import main


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


@pytest.fixture
def cli(capfd):
    def run(*args: str) -> Result:
        code = main([str(a) for a in args])
        out, err = capfd.readouterr()
        return Result(code, out, err)

    return run


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def assert_refused(result: Result, code: int, *words: str) -> str:
    """Exit `code`, exactly one line on stderr naming the problem (each of `words`), no traceback."""
    assert result.code == code, (result.code, result.err)
    assert "Traceback" not in result.err + result.out
    assert len(result.err_lines) == 1, result.err
    line = result.err_lines[0]
    assert line.startswith("edgeprune: error: "), line
    for w in words:
        assert w.lower() in line.lower(), (w, line)
    return line


@pytest.fixture
def refused(cli, tmp_path):
    """Run a command that must fail: checks the contract and that nothing new appeared in
    the test folder (output path included)."""

    def run(code: int, *args, words=(), output: Path | None = None) -> str:
        before = files_under(tmp_path)
        line = assert_refused(cli(*args), code, *words)
        if output is not None:
            assert not output.exists(), f"{output} was written"
        assert files_under(tmp_path) == before, "files were written"
        return line

    return run


def tiny_proto(opset: int = 17, batch: int | str = 1, size: int | str = 4, channels: int = 8,
               ir_version: int | None = None) -> onnx.ModelProto:
    """x -> Conv(3->channels) -> Relu -> Conv(channels->2): one prunable group."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((channels, 3, 3, 3)).astype(np.float32), "w1")
    b1 = numpy_helper.from_array(rng.standard_normal(channels).astype(np.float32), "b1")
    w2 = numpy_helper.from_array(rng.standard_normal((2, channels, 1, 1)).astype(np.float32), "w2")
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["h"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Conv", ["r", "w2"], ["y"], name="conv2"),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 2, size, size])],
        [w1, b1, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version or min(model.ir_version, 8)
    return model


@pytest.fixture
def tiny(tmp_path) -> Path:
    path = tmp_path / "tiny.onnx"
    path.write_bytes(tiny_proto().SerializeToString())
    return path


@pytest.fixture
def out(tmp_path) -> Path:
    return tmp_path / "out" / "pruned.onnx"



def run_process(*args, cwd: Path) -> Result:
    """`python -m edgeprune ...` in a real process: what a user's shell sees, warnings included."""
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "edgeprune", *map(str, args)], cwd=cwd,
                       capture_output=True, text=True, timeout=300)
    return Result(p.returncode, p.stdout, p.stderr)


@pytest.fixture(scope="session")
def measured_lut(tmp_path_factory) -> Path:
    """A folder with a quick host profile (quickhost.toml), a small conv model (tiny.onnx)
    and its complete LUT (lut.json), measured once per session."""
    import json

    from tests.faults.harness import conv_chain, make_monotone, profile_command, write_quick_profile

    folder = tmp_path_factory.mktemp("lut")
    profile = write_quick_profile(folder)
    # big enough that layer times dominate the whole-model "rest" term
    model = conv_chain(folder / "tiny.onnx", 16, [32, 32], [3, 3])
    p = run_process(*profile_command(profile, folder / "lut.json", model)[3:], cwd=folder)
    assert p.code == 0, p.err
    make_monotone(folder / "lut.json")
    # on a model this small the rest term is timing noise of either sign: pin it to 0 so
    # whether a budget is feasible never depends on noise
    doc = json.loads((folder / "lut.json").read_text())
    for record in doc["models"].values():
        record["rest_ms"] = 0.0
    (folder / "lut.json").write_text(json.dumps(doc))
    return folder
