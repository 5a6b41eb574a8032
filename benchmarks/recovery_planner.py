"""Knapsack against uniform ratios *after recovery*, at equal measured latency (issue 17 item 2).

For each pretrained model and budget (a fraction of the dense model's latency measured on
this host, ONNX Runtime with the host LUT's runner settings):

- knapsack: the latency-saliency planner over the host LUT with the importance named by
  `--criteria` (several may be compared), closed on measured latency (`fit_measured`);
- uniform: one keep fraction in every prunable group (L1 norm, rounded to the LUT's channel
  step), the fraction fitted by measured latency (`peers_timing.fit_keep`);

then every candidate gets the same recovery (`edgeprune.recover`, least-squares
reconstruction + BN matching on the calibration views). Latencies in the table come from one
final interleaved batch per model (dense timed first and last); fidelity is top-1 agreement
with the dense model on held-out natural-image views (another seed than calibration), with
its 95% Wilson interval.

    nice -n 10 .venv/bin/python benchmarks/recovery_planner.py [--models efficientnet_lite0]
        [--budgets 0.5,0.7] [--criteria taylor,refit] [--calib 128] [--eval 256]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers_timing import Timer, fit_keep  # noqa: E402

from edgeprune import zoo  # noqa: E402
from edgeprune.data import natural_images  # noqa: E402
from edgeprune.fidelity import outputs, wilson_interval  # noqa: E402
from edgeprune.frontend.export import export_module  # noqa: E402
from edgeprune.frontend.load import load_model  # noqa: E402
from edgeprune.graph import analyze  # noqa: E402
from edgeprune.importance import compute  # noqa: E402
from edgeprune.lut.api import latency_model  # noqa: E402
from edgeprune.plan.budget import Budget  # noqa: E402
from edgeprune.plan.calibrate import fit_measured  # noqa: E402
from edgeprune.plan.costs import LutCostModel  # noqa: E402
from edgeprune.plan.planner import Planner  # noqa: E402
from edgeprune.recover import RecoverOptions, recover  # noqa: E402
from edgeprune.rewrite import prune, ratio_keep  # noqa: E402


def subject(name: str, n_calib: int, n_eval: int, workdir: Path):
    entry = zoo.entry(name)
    shape = entry.input_shape
    model = load_model(export_module(zoo.get(name), shape, workdir / f"{name}.onnx"))
    (inp, _), = model.input_shapes.items()
    norm = entry.normalize or "imagenet"
    return (model, {inp: natural_images(n_calib, shape[-1], seed=1, normalize=norm)},
            {inp: natural_images(n_eval, shape[-1], seed=2, normalize=norm)})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="efficientnet_lite0")
    ap.add_argument("--budgets", default="0.5,0.7")
    ap.add_argument("--criteria", default="taylor", help="importance criteria for the knapsack, comma separated")
    ap.add_argument("--calib", type=int, default=128)
    ap.add_argument("--eval", type=int, default=256)
    ap.add_argument("--fit-rounds", type=int, default=4)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--no-uniform", action="store_true")
    ap.add_argument("--choose-final", action="store_true",
                    help="time every knapsack candidate the fits planned in one interleaved batch and keep, per "
                         "budget, the one that batch measures closest to the budget from below")
    ap.add_argument("--spread", default="",
                    help="with --choose-final: also knapsack plans at the fit's last limit times these factors "
                         "(comma separated, e.g. 0.92,0.96)")
    ap.add_argument("--uniform-keeps", default="",
                    help="also uniform plans at these keep fractions (comma separated), timed in the same batch: "
                         "the uniform curve each knapsack row is compared with at its own measured latency")
    args = ap.parse_args(argv)
    budgets = [float(b) for b in args.budgets.split(",")]
    criteria = [c for c in args.criteria.split(",") if c]
    spread = [float(f) for f in args.spread.split(",") if f] if args.choose_final else []
    t0 = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t0:6.0f}s] {msg}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="edgeprune-rp-") as tmp, Timer("host", "ort") as timer:
        for name in [m for m in args.models.split(",") if m]:
            model, calib, held = subject(name, args.calib, args.eval, Path(tmp))
            analysis = analyze(model)
            ref = outputs(model, held)[0].argmax(1)
            cost = LutCostModel(latency_model(model, "host", "ort"))
            step = cost.channel_step
            dense_ms = timer(model)
            log(f"[{name}] dense {dense_ms:.2f} ms, channel step {step}")

            def beside(candidate) -> float:
                """A candidate's latency as its ratio to the dense model timed beside it (x the
                dense figure above): a load change between fits moves both alike."""
                t = timer.side_by_side({"dense": model, "cand": prune(model, analysis, candidate)}, passes=2)
                return dense_ms * t["cand"] / t["dense"]
            l1 = compute(model, analysis, "l1")
            finals, info, tried = {}, {}, {}
            for crit in criteria:
                ts = time.perf_counter()
                scores = compute(model, analysis, crit, data=calib)
                log(f"[{name}] importance {crit}: {time.perf_counter() - ts:.1f} s")
                planner = Planner(analysis, scores, cost)
                for b in budgets:
                    def plan_at(limit, key=f"knapsack-{crit}@{b}"):
                        r = planner.run(Budget(latency_ms=limit), criterion=crit)
                        tried.setdefault(key, []).append(r.plan.keep)
                        return r.plan.keep, r.plan.predicted["latency_ms"]

                    fit = fit_measured(plan_at, beside, b * dense_ms, rounds=args.fit_rounds)
                    # one fit measurement is noisy (a few % on a loaded host): neighbours of the
                    # last limit give the final batch something to choose from on both sides
                    for f in spread:
                        plan_at(fit.rounds[-1]["limit_ms"] * f)
                    finals[f"knapsack-{crit}@{b}"] = fit.candidate
                    info[f"knapsack-{crit}@{b}"] = f"{len(fit.rounds)} fits"
            if args.choose_final:
                pool = {f"{key}#{i}": keep for key, keeps in tried.items() for i, keep in enumerate(keeps)}
                t = timer.side_by_side({"dense0": model, **{k: prune(model, analysis, v) for k, v in pool.items()},
                                        "dense1": model}, passes=3)
                d = float(np.median([t["dense0"], t["dense1"]]))
                for key in tried:
                    b = float(key.rsplit("@", 1)[1])
                    xs = {k: t[k] / d for k in pool if k.startswith(key + "#")}
                    under = [k for k, x in xs.items() if x <= b * 1.02]
                    pick = max(under, key=xs.get) if under else min(xs, key=xs.get)
                    finals[key] = pool[pick]
                    info[key] += f"; chosen of {len(xs)} at {xs[pick]:.3f}x in one batch"
            if not args.no_uniform:
                cache: dict = {}
                for b in budgets:
                    cand, _, k, tries = fit_keep(
                        lambda k: (ratio_keep(analysis, l1, k, step), beside(ratio_keep(analysis, l1, k, step))),
                        b * dense_ms, dense_ms, cache, args.fit_rounds)
                    finals[f"uniform-l1@{b}"] = cand
                    info[f"uniform-l1@{b}"] = f"keep {k:.3f}, {tries} fits"
                for k in [float(v) for v in args.uniform_keeps.split(",") if v]:
                    finals[f"uniform-l1 keep {k:g}"] = ratio_keep(analysis, l1, k, step)
                    info[f"uniform-l1 keep {k:g}"] = "fixed keep fraction"
            rows = {}
            for key, keep in finals.items():
                pruned = prune(model, analysis, keep)
                ts = time.perf_counter()
                rec = recover(model, pruned, analysis, keep, calib, RecoverOptions()).model
                secs = time.perf_counter() - ts
                rows[key] = (pruned, rec, secs)
                log(f"[{name}] {key} recovered in {secs:.1f} s")
            # one interleaved batch: load drifts fall on all models alike
            side = timer.side_by_side({"dense0": model, **{k: v[1] for k, v in rows.items()}, "dense1": model},
                                      passes=args.passes)
            dense_side = float(np.median([side["dense0"], side["dense1"]]))
            n = len(ref)
            print(f"\n{name}: dense {dense_side:.3f} ms; calibration {args.calib} views, held-out {n} views")
            print(f"{'plan':<24} | {'ms':>7} | {'x dense':>7} | {'MACs':>5} | {'pruned':>6} | "
                  f"top-1 agreement after recovery [95% Wilson] | fit")
            agree = {}
            for key, (pruned, rec, _) in rows.items():
                k_pre = int((outputs(pruned, held)[0].argmax(1) == ref).sum())
                k_rec = int((outputs(rec, held)[0].argmax(1) == ref).sum())
                agree[key] = (side[key] / dense_side, k_rec / n)
                lo, hi = wilson_interval(k_rec, n)
                macs = analyze(pruned).macs / analysis.macs
                print(f"{key:<24} | {side[key]:>7.3f} | {side[key] / dense_side:>7.3f} | {macs:>5.2f} | "
                      f"{k_pre / n:>6.3f} | {k_rec / n:.3f} [{lo:.3f}, {hi:.3f}] | {info[key]}", flush=True)
            curve = sorted(v for k, v in agree.items() if k.startswith("uniform"))
            if len(curve) >= 2:
                xs, ys = zip(*curve)
                for key, (x, a) in agree.items():
                    if key.startswith("knapsack") and xs[0] <= x <= xs[-1]:
                        print(f"{key}: {a:.3f} at {x:.3f}x; uniform at the same measured latency "
                              f"(interpolated) {np.interp(x, xs, ys):.3f}")


if __name__ == "__main__":
    main()
