"""`edgeprune.toml`: a command's flags from a TOML table, the command line winning.

    [compile]
    target = "host"
    budget = "0.5x"
    quantize = "int8"
    data = "calib.npz"
    max-latency = 12.5

Keys are the long flag names without `--` (`max-latency` or `max_latency`), or the
positional argument's name (`model`). Values go through the same click types as the
command line, so a bad value is refused exactly as the flag would be. The file is given with
`--config FILE`; without it, `./edgeprune.toml` is read when present. An unknown key, a
table that is not a table, or a file that is not TOML is a UsageError naming the file and key.
Relative paths in the file are taken relative to the file's folder, so a config checked
into a repository works from any working directory.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import click

from .errors import UsageError

DEFAULT_NAME = "edgeprune.toml"
NAME_OR_PATH = frozenset({"model", "target"})   # a factory or a profile name, or a file


def read_table(path: Path, table: str) -> dict[str, Any]:
    """The `[table]` of a TOML file ({} when the file has no such table)."""
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"--config {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--config {path}: cannot read ({type(e).__name__})") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"--config {path}: invalid TOML ({e})") from None
    section = doc.get(table, {})
    if not isinstance(section, dict):
        raise UsageError(f"{path}: '{table}' must be a table ([{table}])")
    return section


def _param_names(command: click.Command) -> dict[str, click.Parameter]:
    """Config key → parameter: every long option name (with - or _) and argument names."""
    names: dict[str, click.Parameter] = {}
    for p in command.params:
        if p.name in ("config", "help"):
            continue
        if isinstance(p, click.Option):
            for opt in p.opts:
                if opt.startswith("--"):
                    names[opt[2:]] = p
                    names[opt[2:].replace("-", "_")] = p
        else:
            names[p.name] = p
    return names


def default_map(command: click.Command, table: dict[str, Any], path: Path, section: str,
                path_params: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The table as click's `default_map` ({param name: value}); unknown keys are refused.
    Parameters named in `path_params` are resolved relative to the config file's folder."""
    names = _param_names(command)
    out: dict[str, Any] = {}
    for key, value in table.items():
        param = names.get(key)
        if param is None:
            raise UsageError(f"{path}: unknown key '{key}' in [{section}] (known: {', '.join(_display(names))})")
        if isinstance(value, dict):
            raise UsageError(f"{path}: [{section}] {key}: expected a value, got a table")
        if param.name in path_params and isinstance(value, str):
            value = _relative(value, path, always=param.name not in NAME_OR_PATH)
        if param.multiple and not isinstance(value, list):
            value = [value]
        out[param.name] = value
    return out


def _display(names: dict[str, click.Parameter]) -> list[str]:
    """One key per parameter, as written in TOML (the flag's dashed name)."""
    seen, shown = set(), []
    for key, p in names.items():
        if p.name not in seen:
            seen.add(p.name)
            shown.append(key)
    return shown


def _relative(value: str, config_path: Path, always: bool) -> str:
    """A relative file path is taken from the config's folder. Values that may be names
    rather than paths (MODEL `pkg.mod:fn`, DEVICE `host` or `adb:SERIAL`) are paths only
    when they look like one."""
    p = Path(value).expanduser()
    looks_like_path = always or "/" in value or \
        p.suffix.lower() in (".onnx", ".npz", ".json", ".toml", ".pt", ".pth")
    if p.is_absolute() or not looks_like_path or not always and ":" in value:
        return value
    return str(config_path.parent / p)


def config_option(section: str, path_params: frozenset[str] = frozenset()):
    """`--config FILE`: fills the command's defaults from `[section]` before the other
    parameters are read (an eager callback), so anything on the command line wins."""

    def callback(ctx: click.Context, param: click.Parameter, value: str | None):
        path = Path(value) if value else Path(DEFAULT_NAME)
        if not value and not path.is_file():
            return None
        table = read_table(path, section)
        ctx.default_map = {**(ctx.default_map or {}),
                           **default_map(ctx.command, table, path, section, path_params)}
        ctx.meta["edgeprune.config"] = str(path)
        return str(path)

    return click.option("--config", type=click.Path(dir_okay=False), default=None, is_eager=True,
                        expose_value=False, callback=callback,
                        help=f"Read flags from a TOML file's [{section}] table (default ./{DEFAULT_NAME} "
                             "when present); the command line wins.")
