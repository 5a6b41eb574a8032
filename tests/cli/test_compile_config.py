"""`--config edgeprune.toml`: every compile flag from its [compile] table, the command line
winning; unknown keys refused naming the key."""

from __future__ import annotations

import json
import os

import pytest

from edgeprune.cli import main
from tests.pipeline.fixtures import setup  # noqa: F401


def _config(path, setup, **extra):
    table = {"model": str(setup.onnx), "target": str(setup.profile), "lut": str(setup.lut),
             "budget": "0.5x", "quiet": True, **extra}
    lines = ["[compile]"] + [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_flags_come_from_the_config_and_the_command_line_wins(setup, tmp_path):
    cfg = _config(tmp_path / "edgeprune.toml", setup, output="from-config", **{"max-size": 100.0})
    assert main(["compile", "--config", str(cfg), "--budget", "0.7x"]) == 0
    out = tmp_path / "from-config"      # relative paths are taken from the config's folder
    m = json.loads((out / "manifest.json").read_text())
    assert m["budget"]["text"] == "0.7x"                       # the command line won
    assert m["gates"]["max_size"]["limit"] == 100.0            # the config's gate
    assert m["config"] == str(cfg)


def test_unknown_key_exits_2_naming_it(setup, tmp_path, capsys):
    cfg = _config(tmp_path / "edgeprune.toml", setup, output="x", **{"max-latncy": 3})
    assert main(["compile", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "max-latncy" in err[0] and str(cfg) in err[0]
    assert not (tmp_path / "x").exists()


def test_a_bad_value_in_the_config_is_refused_like_the_flag(setup, tmp_path, capsys):
    cfg = _config(tmp_path / "edgeprune.toml", setup, output="x", quantize="int4")
    assert main(["compile", "--config", str(cfg)]) == 2
    assert "int4" in capsys.readouterr().err


def test_edgeprune_toml_in_the_working_folder_is_read_without_flag(setup, tmp_path, capsys):
    _config(tmp_path / "edgeprune.toml", setup, output="x", budget="fast")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert main(["compile"]) == 2
    finally:
        os.chdir(cwd)
    assert "--budget 'fast'" in capsys.readouterr().err


def test_invalid_toml_exits_2(tmp_path, capsys):
    cfg = tmp_path / "edgeprune.toml"
    cfg.write_text("[compile\nbudget = ")
    assert main(["compile", "--config", str(cfg)]) == 2
    assert "invalid TOML" in capsys.readouterr().err
