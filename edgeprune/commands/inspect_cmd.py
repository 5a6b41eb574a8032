"""`edgeprune inspect MODEL [--json]`: channel groups, MACs and parameters."""

from __future__ import annotations

import click

from ..graph import analyze
from ..graph.cost import count_macs, count_params
from ..importance import scores
from ..rewrite import prune, ratio_keep
from ..graph.keep import round_keep
from .common import echo_json, human, model_options, open_model


@click.command("inspect")
@model_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--ratio", type=float, default=0.5, show_default=True,
              help="Keep ratio used for the 'after' totals.")
@click.option("--round-to", type=int, default=8, show_default=True, help="Channel step for the 'after' totals.")
def command(model, input_shape, weights, as_json, ratio, round_to):
    """Channel groups (coupled channels): members, channel count, prunable or frozen and why."""
    loaded = open_model(model, input_shape, weights)
    m = loaded.model
    analysis = analyze(m)
    keep = ratio_keep(analysis, scores(m, analysis, "l1"), ratio, round_to)
    after = prune(m, analysis, keep).proto if keep else m.proto
    totals = {
        "ratio": ratio,
        "round_to": round_to,
        "macs": {"before": analysis.macs, "after": count_macs(after)},
        "params": {"before": analysis.params, "after": count_params(after)},
    }
    if as_json:
        out = analysis.to_json()
        out["model"] = model
        out["totals"] = totals
        for g in out["groups"]:
            g["kept_at_ratio"] = (round_keep(g["channels"], ratio, round_to)
                                  if g["prunable"] else g["channels"])
        echo_json(out)
        return
    _print_table(model, analysis, totals)


def _print_table(model, analysis, totals):
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"Channel groups of {model}", show_lines=False)
    for col in ("id", "root", "channels", "members", "status"):
        table.add_column(col, overflow="fold")
    for g in analysis.groups:
        status = "[green]prunable[/green]" if g.prunable else f"[yellow]frozen[/yellow]: {g.frozen}"
        if g.prunable and g.atom_size > 1:
            status += f" (in blocks of {g.atom_size})"
        table.add_row(g.id, g.name, str(g.channels), str(len(g.members)), status)
    console.print(table)
    p = len(analysis.prunable())
    console.print(f"{len(analysis.groups)} groups: {p} prunable, {len(analysis.groups) - p} frozen")
    console.print(f"MACs {human(totals['macs']['before'])} → {human(totals['macs']['after'])}, "
                  f"params {human(totals['params']['before'])} → {human(totals['params']['after'])} "
                  f"at --ratio {totals['ratio']} (--round-to {totals['round_to']})")
