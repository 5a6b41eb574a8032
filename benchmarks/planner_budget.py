"""Knapsack plans against their budgets and against uniform per-layer ratios (host, ORT).

For each model and budget (a fraction of the dense model's measured latency on this host):

- open loop: the knapsack plan (HALP) for the budget from the LUT alone, pruned and timed;
- closed loop (`plan --measure`): re-planned with the limit scaled by target / measured;
- uniform: every prunable group keeps the same ratio (rounded to the channel step), the
  ratio fitted the same way until its measured latency matches the closed-loop knapsack's.

At the end every final model (dense first and last) is timed again side by side in one
batch on the host device (the runner, clock and settings the LUT was measured with); the
table shows those timings. For the two plans at (about) equal measured latency it prints
the total importance kept (the planner's criterion, Taylor on calibration images by
default) and the top-1 agreement with the dense model on held-out natural-image views
(with --recover, also after edgeprune.recover, applied to both alike). Then the ResNet-50
knapsack's solve time and whole planning time.

    .venv/bin/python benchmarks/planner_budget.py [--models mobilenetv2,efficientnet_lite0,efficientnet_lite1]
        [--budgets 0.3,0.5,0.7] [--criterion taylor] [--calib 64] [--eval 128] [--recover]

The default models carry trained ImageNet weights. The zoo's random initialisations
(ResNet-18, ...) can be named with --models, but their agreement measures only how much of a
random function a pruned model keeps: keep them out of fidelity tables.
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

from edgeprune import zoo  # noqa: E402
from edgeprune.data import natural_images  # noqa: E402
from edgeprune.frontend.export import export_module  # noqa: E402
from edgeprune.frontend.load import load_model  # noqa: E402
from edgeprune.graph import analyze  # noqa: E402
from edgeprune.importance import compute  # noqa: E402
from edgeprune.lut.api import latency_model  # noqa: E402
from edgeprune.plan.budget import Budget  # noqa: E402
from edgeprune.plan.calibrate import fit_measured  # noqa: E402
from edgeprune.plan.costs import LutCostModel  # noqa: E402
from edgeprune.plan.planner import Planner  # noqa: E402
from edgeprune.rewrite import prune, ratio_keep  # noqa: E402
from peers_timing import Timer  # noqa: E402


def top1(proto, images: np.ndarray, name: str) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    # the working model has a static batch of 1
    return np.array([int(sess.run(None, {name: images[i:i + 1]})[0].argmax(1)[0])
                     for i in range(len(images))])


def kept_importance(analysis, scores, keep) -> float:
    total = kept = 0.0
    for g in analysis.prunable():
        s = np.asarray(scores[g.id], dtype=np.float64)
        total += s.sum()
        kept += s[keep[g.id]].sum() if g.id in keep else s.sum()
    return kept / total


def uniform_at(planner, analysis, scores, step, limit_ms):
    """The largest uniform ratio whose predicted latency is at most limit_ms: (keep, ms)."""
    def predicted(r):
        keep = ratio_keep(analysis, scores, r, step)
        counts = np.array([len(keep.get(o.group.id, range(o.group.channels))) for o in planner.groups],
                          dtype=np.float64)
        return keep, planner.predict(counts)[0]

    lo, hi, best = 0.0, 1.0, None
    for _ in range(20):
        mid = 0.5 * (lo + hi)
        keep, ms = predicted(mid)
        if ms <= limit_ms:
            lo, best = mid, (keep, ms)
        else:
            hi = mid
    return best or predicted(1e-6)


def run_model(name, budgets, args, timer, workdir):
    path = export_module(zoo.get(name), zoo.input_shape(name), workdir / f"{name}.onnx")
    model = load_model(path)
    analysis = analyze(model)
    (input_name, shape), = model.input_shapes.items()
    norm = zoo.entry(name).normalize or "imagenet"
    calib = natural_images(args.calib, shape[-1], seed=1, normalize=norm)
    evals = natural_images(args.eval, shape[-1], seed=2, normalize=norm)
    t0 = time.perf_counter()
    scores = compute(model, analysis, args.criterion, data={input_name: calib}, module=zoo.get(name))
    t_importance = time.perf_counter() - t0
    cost = LutCostModel(latency_model(model, "host", "ort"))
    planner = Planner(analysis, scores, cost)
    step = cost.channel_step
    dense_top1 = top1(model.proto, evals, input_name)
    dense_ms = timer(model)

    def pruned(keep):
        return prune(model, analysis, keep) if keep else model

    def plan_at(limit):
        result = planner.run(Budget(latency_ms=limit), criterion=args.criterion)
        return result, result.plan.predicted["latency_ms"]

    rows, finals = [], {"dense": model}
    for b in budgets:
        target = b * dense_ms
        k = fit_measured(plan_at, lambda r: timer(pruned(r.plan.keep)), target)
        u = fit_measured(lambda limit: uniform_at(planner, analysis, scores, step, limit),
                         lambda keep: timer(pruned(keep)), k.measured_ms)
        k_keep, u_keep = k.candidate.plan.keep, u.candidate
        k_model, u_model = pruned(k_keep), pruned(u_keep)
        finals[f"k{b}"], finals[f"u{b}"] = k_model, u_model
        row = {"budget": b, "open": k.rounds[0]["measured_ms"] / dense_ms, "fit": k.measured_ms / dense_ms,
               "k_imp": kept_importance(analysis, scores, k_keep),
               "u_imp": kept_importance(analysis, scores, u_keep),
               "u_ratio": np.mean([len(u_keep.get(g.id, range(g.channels))) / g.channels
                                   for g in analysis.prunable()]),
               "k_agree": float((top1(k_model.proto, evals, input_name) == dense_top1).mean()),
               "u_agree": float((top1(u_model.proto, evals, input_name) == dense_top1).mean()),
               "rounds": len(k.rounds), "solve_s": k.candidate.solve_seconds}
        if args.recover:
            from edgeprune.recover import recover

            for tag, m, keep in (("k", k_model, k_keep), ("u", u_model, u_keep)):
                rec = recover(model, m, analysis, keep, {input_name: calib}).model if keep else m
                row[f"{tag}_rec"] = float((top1(rec.proto, evals, input_name) == dense_top1).mean())
        rows.append(row)
    # the final models side by side in one batch, the dense one first and last
    order = {"dense0": model, **{k: v for k, v in finals.items() if k != "dense"}, "dense1": model}
    side = timer.side_by_side(order)
    dense_side = float(np.median([side["dense0"], side["dense1"]]))
    for row in rows:
        row["k_meas"] = side[f"k{row['budget']}"] / dense_side
        row["u_meas"] = side[f"u{row['budget']}"] / dense_side
    return rows, (side["dense0"], side["dense1"]), t_importance


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="mobilenetv2,efficientnet_lite0,efficientnet_lite1")
    ap.add_argument("--budgets", default="0.3,0.5,0.7")
    ap.add_argument("--criterion", default="taylor", choices=["l1", "l2", "bn", "taylor"])
    ap.add_argument("--calib", type=int, default=64, help="calibration images (taylor, recovery)")
    ap.add_argument("--eval", type=int, default=128, help="held-out images for top-1 agreement")
    ap.add_argument("--recover", action="store_true",
                    help="also report top-1 agreement after edgeprune.recover (both plans alike)")
    ap.add_argument("--skip-resnet50", action="store_true")
    args = ap.parse_args(argv)
    budgets = [float(b) for b in args.budgets.split(",")]
    with Timer("host", "ort") as timer:
        s = timer.settings
        print(f"host ORT, {s.threads} thread(s), {s.clock} clock; criterion {args.criterion}; "
              f"{args.calib} calibration / {args.eval} held-out natural-image views")
        print("open: LUT-only plan, measured/dense; fit: after `plan --measure` rounds, as measured in "
              "the loop; closed: that plan re-timed in the final side-by-side batch (err = closed vs "
              "budget); uniform fitted to the loop's latency\n")
        hdr = (f"{'model':<19}{'budget':>7}{'open':>7}{'fit':>7}{'closed':>7}{'err':>7} | {'unif':>6}{'meas':>7} | "
               f"{'importance K/U':>15} | {'top-1 agree K/U':>16}" + (" | recovered K/U" if args.recover else ""))
        print(hdr)
        print("-" * len(hdr))
        open_err, closed_err = [], []
        with tempfile.TemporaryDirectory(prefix="edgeprune-bench-") as tmp:
            for name in args.models.split(","):
                rows, dense, t_imp = run_model(name, budgets, args, timer, Path(tmp))
                for r in rows:
                    err = r["k_meas"] / r["budget"] - 1
                    open_err.append(abs(r["open"] / r["budget"] - 1))
                    closed_err.append(abs(err))
                    line = (f"{name:<19}{r['budget']:>6.1f}x{r['open']:>7.3f}{r['fit']:>7.3f}{r['k_meas']:>7.3f}"
                            f"{err:>+7.1%} | "
                            f"{r['u_ratio']:>6.3f}{r['u_meas']:>7.3f} | {r['k_imp']:>7.3f}/{r['u_imp']:<7.3f} | "
                            f"{r['k_agree']:>7.3f}/{r['u_agree']:<8.3f}")
                    if args.recover:
                        line += f" | {r['k_rec']:>6.3f}/{r['u_rec']:<6.3f}"
                    print(line, flush=True)
                print(f"{'':<19}dense {dense[0]:.2f} / {dense[1]:.2f} ms (first/last of the batch); "
                      f"importance {t_imp:.0f} s; knapsack {max(r['solve_s'] for r in rows):.3f} s max", flush=True)
        for label, errs in (("open loop", open_err), ("closed loop", closed_err)):
            print(f"{label}: measured/budget within ±10% {sum(e <= 0.10 for e in errs)}/{len(errs)}, "
                  f"±5% {sum(e <= 0.05 for e in errs)}/{len(errs)}")
    if not args.skip_resnet50:
        resnet50_timing()


def resnet50_timing() -> None:
    with tempfile.TemporaryDirectory(prefix="edgeprune-bench-") as tmp:
        path = export_module(zoo.get("resnet50"), zoo.input_shape("resnet50"), Path(tmp) / "resnet50.onnx")
        model = load_model(path)
    analysis = analyze(model)
    scores = compute(model, analysis, "l1")
    planner = Planner(analysis, scores, LutCostModel(latency_model(model, "host", "ort")))
    n_options = sum(len(o.counts) for o in planner.groups)
    for b in (0.3, 0.5, 0.7):
        r = planner.run(Budget(latency_x=b))
        print(f"ResNet-50 {b}x: knapsack {r.solve_seconds:.3f} s (DP over {r.plan.solver['bins']} bins, "
              f"{len(planner.groups)} groups, {n_options} options, {r.iterations} pricing iterations); "
              f"whole plan {r.total_seconds:.3f} s; predicted "
              f"{r.plan.predicted['latency_ms'] / r.plan.predicted['dense_latency_ms']:.3f}x", flush=True)


if __name__ == "__main__":
    main()
