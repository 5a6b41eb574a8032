"""Argument parsing and the exit-code table: the only place that knows exit codes.

Each command lives in `edgeprune/commands/<name>.py` and exposes a click command named
`command`; it is imported only when invoked so `edgeprune --help` stays fast.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback

import click

from .errors import EdgePruneError

# where a bug goes: one line, so a CI log shows it whole
REPORT_HINT = "a bug in edgeprune: please report it to the edgeprune issue tracker with the output of --debug"

# name -> one-line help; the module edgeprune.commands.<module> holds `command`.
COMMANDS = {
    "inspect": ("inspect_cmd", "Channel groups (coupled channels), MACs and parameters."),
    "prune": ("prune_cmd", "Physically remove channels by ratio or by a plan."),
    "profile": ("profile_cmd", "Measure the latency/energy lookup table on a device."),
    "latency": ("latency_cmd", "Predicted (and measured) latency and energy of a model."),
    "plan": ("plan_cmd", "The hardware-aware (latency-saliency knapsack) channel plan."),
    "compile": ("compile_cmd", "The whole pipeline: plan, prune, recover, quantize, compile, verify, report."),
    "devices": ("devices_cmd", "Profiles on disk and devices reachable now."),
    "verify": ("verify_cmd", "Re-run a compiled artifact against its reference and re-check its gates."),
    "bundle": ("bundle_cmd", "Build the device bundle (Python, numpy, the runtimes) for devices without Python."),
    "report": ("report_cmd", "An artifact's report.md for a GitHub job summary (plots linked where uploaded)."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module_name, _ = COMMANDS[name]
        try:
            module = importlib.import_module(f"edgeprune.commands.{module_name}")
        except ModuleNotFoundError as e:
            if e.name == f"edgeprune.commands.{module_name}":
                return _not_built(name)
            raise
        return module.command

    def format_commands(self, ctx, formatter):
        rows = [(name, help_) for name, (_, help_) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _not_built(name: str) -> click.Command:
    @click.command(name, context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def stub(args):
        raise click.UsageError(f"'{name}' is not available in this build")

    return stub


def _print_version(ctx, param, value):
    if not value or ctx.resilient_parsing:
        return
    from .provenance import version_line

    click.echo(version_line())
    ctx.exit()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Print tracebacks for internal errors.")
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Print the versions of edgeprune, onnx, onnxruntime, TVM, torch and numpy, and exit.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Where LUTs and TVM tuning databases are kept (default $EDGEPRUNE_CACHE_DIR, "
                   "else ~/.cache/edgeprune).")
@click.option("--config-dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Where your own device profiles are found, in DIR/profiles (default "
                   "$EDGEPRUNE_CONFIG_DIR, else ~/.config/edgeprune).")
@click.pass_context
def cli(ctx, debug, cache_dir, config_dir):
    """edgeprune: a deployment compiler that prunes a model to fit an edge device."""
    ctx.obj = {"debug": debug}
    # edgeprune/locations.py reads these when it is asked, so every command sees them
    if cache_dir:
        os.environ["EDGEPRUNE_CACHE_DIR"] = os.path.abspath(cache_dir)
    if config_dir:
        os.environ["EDGEPRUNE_CONFIG_DIR"] = os.path.abspath(config_dir)


def main(argv: list[str] | None = None) -> int:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="edgeprune", standalone_mode=False)
        return 0
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("edgeprune: interrupted", err=True)
        return 1
    except click.ClickException as e:
        # click's own usage errors are bad usage: exit 2 with one line.
        click.echo(f"edgeprune: error: {e.format_message()}", err=True)
        return 2
    except EdgePruneError as e:
        if e.exit_code == 1:
            click.echo(f"edgeprune: internal error: {e} ({REPORT_HINT})", err=True)
        else:
            click.echo(f"edgeprune: error: {e}", err=True)
        if debug:
            traceback.print_exc()
        return e.exit_code
    except KeyboardInterrupt:
        click.echo("edgeprune: interrupted", err=True)
        return 1
    except Exception as e:  # a bug: exit 1, one line; the traceback only with --debug
        first = str(e).splitlines()[0] if str(e) else ""
        click.echo(f"edgeprune: internal error: {type(e).__name__}: {first} ({REPORT_HINT})", err=True)
        if debug:
            traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main())
