"""`edgeprune prune MODEL (--ratio R | --plan PLAN.json) -o OUT.onnx`."""

from __future__ import annotations

import click

from ..errors import UsageError
from ..frontend.load import save_model
from ..graph import analyze
from ..rewrite import prune, ratio_keep
from .common import (check_output_path, data_options, human, load_data_option, model_options,
                     open_model)


def compute_scores(loaded, analysis, criterion, data):
    """Importance per group; data-driven criteria get the calibration data and torch module."""
    from .. import importance

    compute = getattr(importance, "compute", None)
    if compute is not None:
        return compute(loaded.model, analysis, criterion, data=data, module=loaded.module)
    return importance.scores(loaded.model, analysis, criterion)


@click.command("prune")
@model_options
@click.option("--ratio", type=float, default=None, help="Keep this fraction of every prunable group.")
@click.option("--plan", "plan_path", type=str, default=None, help="Apply a plan from `edgeprune plan`.")
@click.option("--criterion", type=click.Choice(["l1", "l2", "bn", "taylor", "refit"]), default="l1", show_default=True)
@data_options
@click.option("--round-to", type=int, default=8, show_default=True, help="Channel step for --ratio.")
@click.option("-o", "--output", required=True, help="Output .onnx path.")
def command(model, input_shape, weights, ratio, plan_path, criterion, data, image_size, mean, std,
            round_to, output):
    """Physically remove channels; --ratio keeps R of every prunable group, most important first."""
    if (ratio is None) == (plan_path is None):
        raise UsageError("give exactly one of --ratio and --plan")
    if ratio is not None and not 0 < ratio <= 1:
        raise UsageError(f"--ratio must be in (0, 1], got {ratio}")
    if round_to < 1:
        raise UsageError(f"--round-to must be >= 1, got {round_to}")
    if criterion in ("taylor", "refit") and not data:
        raise UsageError(f"--criterion {criterion} needs --data")
    out = check_output_path(output, ".onnx")
    loaded = open_model(model, input_shape, weights)
    m = loaded.model
    analysis = analyze(m)
    if plan_path:
        from ..plan.schema import load_plan

        keep = load_plan(plan_path, m, analysis).keep
    else:
        calib = load_data_option(data, m, image_size, mean, std)
        keep = ratio_keep(analysis, compute_scores(loaded, analysis, criterion, calib), ratio, round_to)
    pruned = prune(m, analysis, keep) if keep else m
    after = analyze(pruned)
    save_model(pruned.proto, out)
    removed = sum(analysis.group(g).channels - len(k) for g, k in keep.items())
    click.echo(f"pruned {len(keep)} of {len(analysis.prunable())} prunable groups, removed {removed} channels")
    click.echo(f"params {human(analysis.params)} → {human(after.params)} "
               f"({after.params / max(analysis.params, 1):.2f}x), "
               f"MACs {human(analysis.macs)} → {human(after.macs)} ({after.macs / max(analysis.macs, 1):.2f}x)")
    click.echo(f"wrote {out}")
