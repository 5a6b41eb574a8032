"""One name for the device: `--device DEVICE` on every command that takes one (INTERFACE.md's
name), `--target` the same option (compile and verify were written with it), and both keys
in edgeprune.toml."""

import importlib
import json

import click
import pytest

from edgeprune.cli import main
from tests.cli import test_plan_cmd

DEVICE_COMMANDS = ["compile", "verify", "profile", "latency", "plan"]
residual_onnx = test_plan_cmd.residual_onnx   # a small residual CNN as .onnx (fixture)


@pytest.mark.parametrize("name", DEVICE_COMMANDS)
def test_device_and_target_are_one_option(name):
    from edgeprune.cli import COMMANDS

    command = importlib.import_module(f"edgeprune.commands.{COMMANDS[name][0]}").command
    spelled = [p for p in command.params if isinstance(p, click.Option) and {"--device", "--target"} & set(p.opts)]
    assert len(spelled) == 1 and spelled[0].opts[:2] == ["--device", "--target"]


@pytest.mark.parametrize("flag", ["--device", "--target"])
def test_plan_reads_either_spelling(residual_onnx, tmp_path, flag):
    out = tmp_path / "plan.json"
    assert main(["plan", str(residual_onnx), flag, "pixel-7", "--step", "4", "--budget", "0.5x",
                 "-o", str(out)]) == 0
    assert json.loads(out.read_text())["device"] == "pixel-7"


@pytest.mark.parametrize("flag", ["--device", "--target"])
def test_a_bad_device_is_refused_the_same_way(residual_onnx, tmp_path, flag, capsys):
    rc = main(["compile", str(residual_onnx), flag, "adb:", "--budget", "0.5x", "-o", str(tmp_path / "out")])
    assert rc == 2 and "adb needs a serial" in capsys.readouterr().err


@pytest.mark.parametrize("key", ["device", "target"])
def test_either_key_in_edgeprune_toml(tmp_path, key):
    from edgeprune.commands.compile_cmd import PATH_KEYS, command
    from edgeprune.config import default_map

    assert default_map(command, {key: "adb:R5CT"}, tmp_path / "edgeprune.toml", "compile", PATH_KEYS) \
        == {"target": "adb:R5CT"}
