"""`edgeprune plan MODEL --device D --budget B [--criterion ...] [--data DATA] -o PLAN.json`."""

from __future__ import annotations

import click

from ..errors import UsageError
from ..graph import analyze
from ..plan.budget import Budget, parse_budget
from ..plan.knapsack import DEFAULT_BINS
from ..rewrite import prune
from .common import check_output_path, data_options, device_option, load_data_option, model_options, open_model


# a plan priced on a transferred LUT lands, its entries are measured, it is planned again:
# a few rounds, since the new prices may move it onto other transferred entries
REFINE_ROUNDS = 3


@click.command("plan")
@model_options
@device_option()
@click.option("--budget", "budgets", multiple=True, required=True,
              help="12ms, 0.5x (of the dense latency on the device) or 30mJ; repeat or join "
                   "with commas to combine.")
@click.option("--criterion", type=click.Choice(["l1", "l2", "bn", "taylor", "refit"]), default="l1", show_default=True)
@data_options
@click.option("--backend", type=click.Choice(["ort", "tvm"]), default="ort", show_default=True)
@click.option("--lut", default=None, help="LUT file (default: the device's LUT in the user cache, luts/).")
@click.option("--min-channels", type=int, default=None,
              help="Keep at least this many channels per group (default: one channel step).")
@click.option("--step", type=int, default=None, help="Channel step (default: the LUT's).")
@click.option("--solver", type=click.Choice(["auto", "dp", "greedy"]), default="auto", show_default=True)
@click.option("--bins", type=int, default=DEFAULT_BINS, show_default=True,
              help="Budget grid of the dynamic programme.")
@click.option("--measure", is_flag=True,
              help="Time the planned model on the device and re-plan until the measured latency "
                   "meets the budget (x budgets then mean x of the measured dense latency).")
@click.option("-o", "--output", required=True, help="Output plan .json path.")
def command(model, input_shape, weights, device_spec, budgets, criterion, data, image_size, mean,
            std, backend, lut, min_channels, step, solver, bins, measure, output):
    """The hardware-aware channel plan: HALP's latency-saliency knapsack over a measured LUT."""
    budget = parse_budget(budgets)
    if criterion in ("taylor", "refit") and not data:
        raise UsageError(f"--criterion {criterion} needs --data")
    for flag, value in (("--min-channels", min_channels), ("--step", step), ("--bins", bins)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be >= 1, got {value}")
    out = check_output_path(output, ".json")

    from ..devices.detect import with_profile
    from ..devices.profile import parse_device
    from ..importance import compute
    from ..lut.api import latency_model
    from ..plan.costs import LutCostModel
    from ..plan.planner import Planner
    from ..plan.schema import save_plan

    spec = with_profile(parse_device(device_spec))
    loaded = open_model(model, input_shape, weights)
    m = loaded.model
    analysis = analyze(m)
    if not analysis.prunable():
        raise UsageError(f"{model}: no prunable channel group (see `edgeprune inspect`)")
    calib = load_data_option(data, m, image_size, mean, std)
    scores = compute(m, analysis, criterion, data=calib, module=loaded.module)
    lm = latency_model(m, spec, backend, lut)
    # a roofline prior has no measured step: the profile's, if it states one
    prior_step = spec.profile.channel_step if spec.profile is not None and \
        isinstance(spec.profile.channel_step, int) else None
    cost = LutCostModel(lm, channel_step=None if getattr(lm, "lut", None) is not None else prior_step)
    planner = Planner(analysis, scores, cost, step, min_channels)
    run = dict(bins=bins, method=solver, device=device_spec, criterion=criterion)
    if measure:
        result = _measured(planner, run, budget, m, analysis, spec, backend)
    else:
        result = planner.run(budget, **run)
        for _ in range(REFINE_ROUNDS):
            lm = _refine_where_planned(lm, m, analysis, result, spec, backend)
            if lm is None:
                break
            cost = LutCostModel(lm)   # priced again on what the device measured where it landed
            result = Planner(analysis, scores, cost, step, min_channels).run(budget, **run)
    save_plan(result.plan, out)
    _summary(result, cost)
    click.echo(f"wrote {out}")


def _refine_where_planned(lm, model, analysis, result, spec, backend):
    """The latency model re-read after measuring the transferred LUT entries (lut/transfer.py)
    the plan lands on; None when it rests on none, or the device cannot be measured."""
    from ..lut.refine import refined_model
    from ..shipped import measurable

    if measurable(spec) is not None:
        return None
    channels = analysis.layer_channels({g.id: g.kept for g in result.plan.groups})
    refined = refined_model(lm, model, channels, spec, backend)
    if refined is None:
        return None
    click.echo(f"{refined[1].measured} transferred LUT entries measured where the plan lands", err=True)
    return refined[0]


def _measured(planner, run, budget, model, analysis, spec, backend):
    """compile's closed loop (budget_fit.py) without the compile: each plan is built as it
    would ship, timed beside the dense model and re-planned with the limit scaled by
    target / measured; the plan keeps the user's budget and records the timings."""
    from ..backends.base import TargetSpec
    from ..budget_fit import fit_plan
    from ..devices.profile import load_profile
    from ..shipped import ShippedTimer

    if budget.latency_ms is None and budget.latency_x is None:
        raise UsageError("--measure needs a latency budget (ms or x)")

    def plan_at(limit):
        return planner.run(Budget(latency_ms=limit, energy_mj=budget.energy_mj), **run)

    target = TargetSpec.from_profile(spec.profile if spec.profile is not None else load_profile("host"))
    with ShippedTimer(spec, backend, target) as timer:
        dense_ms = timer.time({"dense": model}, prepared={"dense": True})["dense"]
        fit = fit_plan(plan_at, budget, timer, model,
                       lambda r: prune(model, analysis, r.plan.keep) if r.plan.keep else model,
                       dense_ms, spec.raw)
    result = fit.plan_result
    result.plan.budget = budget.to_json()
    result.plan.measured = {"dense_ms": dense_ms, "latency_ms": fit.measured_ms, "target_ms": fit.target_ms,
                            "rounds": fit.rounds}
    return result


def _summary(result, cost) -> None:
    plan = result.plan
    p, s = plan.predicted, plan.solver
    est = " (estimated: roofline prior)" if cost.estimated else ""
    e_est = " estimated" if p["energy_estimated"] else ""
    pruned = sum(1 for g in plan.groups if g.kept < g.total)
    click.echo(f"budget {plan.budget['text']}: predicted {p['latency_ms']:.3f} ms of dense "
               f"{p['dense_latency_ms']:.3f} ms ({p['latency_ms'] / p['dense_latency_ms']:.3f}x){est}, "
               f"energy {p['energy_mj']:.3f} mJ of {p['dense_energy_mj']:.3f} mJ{e_est}")
    click.echo(f"kept {plan.importance['kept'] / max(plan.importance['total'], 1e-30):.1%} of "
               f"{plan.criterion} importance; {pruned} of {len(plan.groups)} prunable groups shrink")
    click.echo(f"solver {s['method']}: {s['iterations']} pricing iteration(s)"
               f"{', converged' if s['converged'] else ''}, budget grid {s['bins']} bins "
               f"(discretisation error <= {s['discretisation_error']:.3g} "
               f"{'ms' if s['discretised'] == 'latency_ms' else 'mJ'}), "
               f"knapsack {result.solve_seconds:.3f} s, total {result.total_seconds:.3f} s")
    if plan.measured:
        m = plan.measured
        for k, r in enumerate(m["rounds"], 1):
            click.echo(f"  round {k}: planned to {r['limit_ms']:.3f} ms, predicted {r['predicted_ms']:.3f}, "
                       f"measured {r['measured_ms']:.3f} ms")
        click.echo(f"measured {m['latency_ms']:.3f} ms of dense {m['dense_ms']:.3f} ms "
                   f"({m['latency_ms'] / m['dense_ms']:.3f}x; target {m['target_ms']:.3f} ms)")
