"""Knapsack plans against their budgets and against uniform per-layer ratios (host, ORT).

For each model and budget (a fraction of the dense model's latency on this host), in one
run: the knapsack plan (HALP) and the uniform plan (every prunable group keeps the same
ratio, rounded to the channel step) whose *predicted* latency is the largest not above the
knapsack's; every model is then pruned and all are timed side by side on the host device
(the same runner, clock and settings the LUT was measured with). Printed per row:

- measured latency of the knapsack model / measured dense latency, against the budget;
- for the two plans at (about) equal measured latency: total importance kept (the planner's
  criterion, Taylor on calibration images by default) and top-1 agreement with the dense
  model on held-out natural-image views.

Then the ResNet-50 knapsack's solve time (the DP alone, all pricing iterations) and the
whole planning time.

    .venv/bin/python benchmarks/planner_budget.py [--models resnet18,mobilenetv2,efficientnet_lite0]
        [--budgets 0.3,0.5,0.7] [--criterion taylor] [--calib 64] [--eval 256]

Note: only EfficientNet-Lite0 in the zoo carries trained weights; ResNet-18 and MobileNetV2
are seeded random initialisations, so their top-1 agreement measures how much of the dense
function the pruned model keeps, not accuracy.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeprune import zoo  # noqa: E402
from edgeprune.data import natural_images  # noqa: E402
from edgeprune.devices.base import BenchTask  # noqa: E402
from edgeprune.devices.open import open_device  # noqa: E402
from edgeprune.devices.profile import parse_device  # noqa: E402
from edgeprune.frontend.export import export_module  # noqa: E402
from edgeprune.frontend.load import load_model, save_model  # noqa: E402
from edgeprune.graph import analyze  # noqa: E402
from edgeprune.importance import compute  # noqa: E402
from edgeprune.lut.api import latency_model  # noqa: E402
from edgeprune.lut.session import profile_settings  # noqa: E402
from edgeprune.plan.budget import parse_budget  # noqa: E402
from edgeprune.plan.costs import LutCostModel  # noqa: E402
from edgeprune.plan.planner import Planner  # noqa: E402
from edgeprune.rewrite import prune, ratio_keep  # noqa: E402

NORMALIZE = {"efficientnet_lite0": "tflite"}


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


def uniform_matching(planner, analysis, scores, step, target_ms):
    """The largest uniform ratio whose predicted latency is at most target_ms."""
    def predicted(r):
        keep = ratio_keep(analysis, scores, r, step)
        counts = np.array([len(keep.get(o.group.id, range(o.group.channels))) for o in planner.groups],
                          dtype=np.float64)
        return planner.predict(counts)[0], keep

    lo, hi = 0.0, 1.0
    best = None
    for _ in range(20):
        mid = 0.5 * (lo + hi)
        ms, keep = predicted(mid)
        if ms <= target_ms:
            lo, best = mid, (mid, ms, keep)
        else:
            hi = mid
    if best is None:
        ms, keep = predicted(1e-6)
        best = (0.0, ms, keep)
    return best


def run_model(name, budgets, criterion, n_calib, n_eval, device, settings, workdir, recover_models):
    path = export_module(zoo.get(name), zoo.input_shape(name), workdir / f"{name}.onnx")
    model = load_model(path)
    analysis = analyze(model)
    (input_name, shape), = model.input_shapes.items()
    norm = NORMALIZE.get(name, "imagenet")
    calib = natural_images(n_calib, shape[-1], seed=1, normalize=norm)
    evals = natural_images(n_eval, shape[-1], seed=2, normalize=norm)
    t0 = time.perf_counter()
    scores = compute(model, analysis, criterion, data={input_name: calib}, module=zoo.get(name))
    t_importance = time.perf_counter() - t0
    lm = latency_model(model, "host", "ort")
    cost = LutCostModel(lm)
    planner = Planner(analysis, scores, cost)
    dense_top1 = top1(model.proto, evals, input_name)
    files = {"dense": path}
    rows = []
    for b in budgets:
        result = planner.run(parse_budget(f"{b}x"), criterion=criterion)
        plan = result.plan
        k_model = prune(model, analysis, plan.keep)
        ratio, u_pred, u_keep = uniform_matching(planner, analysis, scores, cost.channel_step,
                                                 plan.predicted["latency_ms"])
        u_model = prune(model, analysis, u_keep) if u_keep else model
        for tag, m in (("knapsack", k_model), ("uniform", u_model)):
            files[f"{tag}{b}"] = workdir / f"{name}-{tag}{b}.onnx"
            save_model(m.proto, files[f"{tag}{b}"])
        agree = {}
        if recover_models:
            from edgeprune.recover import recover

            for tag, m, keep in (("k", k_model, plan.keep), ("u", u_model, u_keep)):
                rec = recover(model, m, analysis, keep, {input_name: calib}).model if keep else m
                agree[f"{tag}_agree_rec"] = float((top1(rec.proto, evals, input_name) == dense_top1).mean())
        rows.append({**agree,
            "budget": b, "k_pred": plan.predicted["latency_ms"], "dense_pred": plan.predicted["dense_latency_ms"],
            "k_imp": plan.importance["kept"] / plan.importance["total"],
            "u_imp": kept_importance(analysis, scores, u_keep), "u_ratio": ratio, "u_pred": u_pred,
            "k_agree": float((top1(k_model.proto, evals, input_name) == dense_top1).mean()),
            "u_agree": float((top1(u_model.proto, evals, input_name) == dense_top1).mean()),
            "solve_s": result.solve_seconds, "plan_s": result.total_seconds,
        })
    # every model of this architecture timed side by side, the dense one first and last
    order = ["dense"] + [k for k in files if k != "dense"] + ["dense"]
    tasks = [BenchTask(id=f"{k}#{i}", model=Path(files[k]), backend="ort", threads=settings.threads,
                       cores=settings.cores, warmup=5, repeats=30, min_seconds=1.0,
                       options=settings.options, clock=settings.clock) for i, k in enumerate(order)]
    results = device.measure(tasks)
    measured: dict[str, list[float]] = {}
    for r in results:
        if not r.ok:
            raise SystemExit(f"{r.id}: {r.error}")
        measured.setdefault(r.id.split("#")[0], []).append(r.median_ms)
    dense_ms = float(np.median(measured["dense"]))
    for row in rows:
        row["k_meas"] = measured[f"knapsack{row['budget']}"][0] / dense_ms
        row["u_meas"] = measured[f"uniform{row['budget']}"][0] / dense_ms
    return rows, dense_ms, measured["dense"], t_importance


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18,mobilenetv2,efficientnet_lite0")
    ap.add_argument("--budgets", default="0.3,0.5,0.7")
    ap.add_argument("--criterion", default="taylor", choices=["l1", "l2", "bn", "taylor"])
    ap.add_argument("--calib", type=int, default=64, help="calibration images (taylor)")
    ap.add_argument("--eval", type=int, default=256, help="held-out images for top-1 agreement")
    ap.add_argument("--skip-resnet50", action="store_true")
    ap.add_argument("--recover", action="store_true",
                    help="also report top-1 agreement after edgeprune.recover (both plans alike)")
    args = ap.parse_args(argv)
    budgets = [float(b) for b in args.budgets.split(",")]
    spec = parse_device("host")
    device = open_device(spec)
    settings = profile_settings(device, "ort")
    print(f"host ORT, {settings.threads} thread(s), {settings.clock} clock; criterion {args.criterion}; "
          f"{args.calib} calibration / {args.eval} held-out natural-image views\n")
    hdr = (f"{'model':<19}{'budget':>7}{'pred':>7}{'meas':>7}{'err':>7} | {'unif r':>6}{'meas':>7} | "
           f"{'importance K/U':>15} | {'top-1 agree K/U':>16}"
           + (f" | {'recovered K/U':>15}" if args.recover else ""))
    print(hdr)
    print("-" * len(hdr))
    errors = []
    try:
        with tempfile.TemporaryDirectory(prefix="edgeprune-bench-") as tmp:
            for name in args.models.split(","):
                rows, dense_ms, dense_all, t_imp = run_model(name, budgets, args.criterion, args.calib,
                                                             args.eval, device, settings, Path(tmp),
                                                             args.recover)
                for r in rows:
                    err = r["k_meas"] / r["budget"] - 1
                    errors.append(abs(err))
                    print(f"{name:<19}{r['budget']:>6.1f}x{r['k_pred'] / r['dense_pred']:>7.3f}"
                          f"{r['k_meas']:>7.3f}{err:>+7.1%} | {r['u_ratio']:>6.3f}{r['u_meas']:>7.3f} | "
                          f"{r['k_imp']:>7.3f}/{r['u_imp']:<7.3f} | {r['k_agree']:>7.3f}/{r['u_agree']:<8.3f}"
                          + (f" | {r['k_agree_rec']:>7.3f}/{r['u_agree_rec']:<7.3f}" if args.recover else ""))
                print(f"{'':<19}dense measured {', '.join(f'{v:.2f}' for v in dense_all)} ms "
                      f"(first/last); importance {t_imp:.1f} s; plan {max(r['plan_s'] for r in rows):.2f} s max")
            print(f"\nmeasured/budget within ±10%: {sum(e <= 0.10 for e in errors)}/{len(errors)}, "
                  f"±5%: {sum(e <= 0.05 for e in errors)}/{len(errors)}")
            if not args.skip_resnet50:
                resnet50_timing(Path(tmp))
    finally:
        device.close()


def resnet50_timing(workdir: Path) -> None:
    path = export_module(zoo.get("resnet50"), zoo.input_shape("resnet50"), workdir / "resnet50.onnx")
    model = load_model(path)
    analysis = analyze(model)
    scores = compute(model, analysis, "l1")
    lm = latency_model(model, "host", "ort")
    planner = Planner(analysis, scores, LutCostModel(lm))
    n_options = sum(len(o.counts) for o in planner.groups)
    for b in ("0.3x", "0.5x", "0.7x"):
        r = planner.run(parse_budget(b))
        print(f"ResNet-50 {b}: knapsack (DP, {r.iterations} pricing iterations, {len(planner.groups)} groups, "
              f"{n_options} options, {r.plan.solver['bins']} bins) {r.solve_seconds:.3f} s; whole plan "
              f"{r.total_seconds:.3f} s; predicted {r.plan.predicted['latency_ms'] / r.plan.predicted['dense_latency_ms']:.3f}x")


if __name__ == "__main__":
    main()
