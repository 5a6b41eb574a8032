"""`edgeprune compile MODEL --device DEVICE --budget BUDGET [...] -o OUTDIR [gates]` (`--target` is the same option)."""

from __future__ import annotations

import click

from ..config import config_option
from ..pipeline import BACKENDS, CALIBRATION, CRITERIA, QUANTIZE, CompileRequest
from .common import data_options, device_option, gate_options

PATH_KEYS = frozenset({"model", "weights", "data", "lut", "output", "target"})


@click.command("compile")
@click.argument("model", required=False)
@click.option("--input-shape", default=None, help="Input shape, e.g. 1x3x224x224 (factories, dynamic dims).")
@click.option("--weights", default=None, help="State dict for a PyTorch factory (weights_only=True).")
@device_option("target")
@click.option("--budget", "budget", multiple=True,
              help="12ms, 0.5x (of dense latency) or 30mJ; join with commas to combine.")
@click.option("--sweep", multiple=True,
              help="Also plan, prune and recover at this budget (repeatable) for the fidelity-vs-latency plot.")
@click.option("--backend", type=click.Choice(BACKENDS), default="ort", show_default=True)
@click.option("--quantize", type=click.Choice(QUANTIZE), default="none", show_default=True)
@click.option("--calibration", type=click.Choice(CALIBRATION), default="percentile", show_default=True,
              help="int8 activation-range calibration on DATA.")
@click.option("--criterion", type=click.Choice(CRITERIA), default=None,
              help="Importance (default: refit with --data, l1 without).")
@data_options
@click.option("--lut", default=None, help="LUT file (default: the device's LUT in the user cache, ~/.cache/edgeprune/luts/).")
@click.option("--tuning-trials", type=int, default=0, show_default=True,
              help="TVM MetaSchedule trials (host targets; 0 = reuse the tuning database only).")
@click.option("--finetune-steps", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
              help="Distil the pruned model from the dense one for N steps on DATA after recovery (0 = off).")
@click.option("-o", "--output", default=None, help="OUTDIR: the artifact directory (replaced on success).")
@gate_options
@click.option("--quiet", is_flag=True, help="No progress display.")
@config_option("compile", PATH_KEYS)
@click.pass_context
def command(ctx, model, input_shape, weights, target, budget, sweep, backend, quantize, calibration, criterion,
            data, image_size, mean, std, lut, tuning_trials, finetune_steps, output, max_latency, max_energy,
            min_fidelity, max_size, quiet):
    """The whole pipeline: export, plan, prune, recover, quantize, compile, verify, report.

    Exit codes: 0 done and every gate held; 2 bad input (nothing written); 3 budget
    infeasible; 4 a gate failed (the artifact is built); 5 device error."""
    from ..errors import UsageError
    from ..pipeline import compile_model
    from ..report.markdown import headline

    if output is None:
        raise UsageError("-o OUTDIR is required (or output in the [compile] table of edgeprune.toml)")
    if model is None:
        raise UsageError("MODEL is required (an .onnx file or package.module:function)")
    req = CompileRequest(
        output=output, model=model, input_shape=input_shape, weights=weights, target=target,
        budget=tuple(budget), sweep=tuple(sweep), backend=backend, quantize=quantize, calibration=calibration, data=data,
        image_size=image_size, mean=mean, std=std, criterion=criterion, lut=lut,
        tuning_trials=tuning_trials, finetune_steps=finetune_steps, quiet=quiet, config=ctx.meta.get("edgeprune.config"),
        gates={"max_latency": max_latency, "max_energy": max_energy, "min_fidelity": min_fidelity,
               "max_size": max_size})
    try:
        result = compile_model(req)
    except Exception as e:
        from ..errors import GateFailed

        if isinstance(e, GateFailed):
            _print_summary(output, headline)
        raise
    _print_summary(result.outdir, headline)


def _print_summary(outdir, headline) -> None:
    from pathlib import Path

    from ..report.manifest import load_manifest

    m = load_manifest(outdir)
    click.echo(f"wrote {Path(outdir)} (report: {Path(outdir) / 'report.md'})")
    for line in headline(m):
        click.echo(f"  {line}")
