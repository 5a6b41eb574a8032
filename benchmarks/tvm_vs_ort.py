"""Tuned TVM against ONNX Runtime on a pruned ResNet-18, on this host, side by side.

    .venv/bin/python benchmarks/tvm_vs_ort.py [--trials 640] [--per-task 48] [--strategy evolutionary]

Prunes the zoo's ResNet-18 to half of every prunable group (L1), compiles it with the TVM
backend under a MetaSchedule trial budget (a fresh tuning database unless --cache is given,
so the tuning time printed is what the budget costs from nothing), and times the TVM
library and an ONNX Runtime session (its best: all graph optimisations) in the same
process, interleaved round by round, with the same number of threads. Prints both medians,
their ratio, and the max abs difference of both against ONNX Runtime fp32 unoptimised.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def pruned_resnet18(workdir: Path):
    from edgeprune import zoo
    from edgeprune.frontend.export import export_module
    from edgeprune.frontend.load import load_model
    from edgeprune.graph import analyze
    from edgeprune.importance import scores
    from edgeprune.rewrite import prune, ratio_keep

    model = load_model(export_module(zoo.get("resnet18"), zoo.input_shape("resnet18"), workdir / "resnet18.onnx"))
    analysis = analyze(model)
    pruned = prune(model, analysis, ratio_keep(analysis, scores(model, analysis, "l1"), 0.5))
    return model, analysis, pruned, analyze(pruned)


def ort_session(proto, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    if threads == 1:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=640, help="MetaSchedule trial budget (global)")
    ap.add_argument("--per-task", type=int, default=48, help="trial cap per task")
    ap.add_argument("--strategy", default="evolutionary", choices=["evolutionary", "replay-trace"],
                    help="evolutionary: cost-model guided (1.97x ORT at 640 trials here); replay-trace: "
                         "random candidates, no search cost per round (2.48x at 640 trials)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--runs", type=int, default=10, help="timed runs per backend per round")
    ap.add_argument("--cache", type=Path, default=None, help="tuning database folder to reuse (default: fresh)")
    args = ap.parse_args(argv)

    # both runtimes get the same threads; TVM's pool reads this when it starts
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    from edgeprune.backends.base import TargetSpec
    from edgeprune.backends.tvm import TvmBackend, load_library
    from edgeprune.backends.verify import compare, random_inputs, reference_outputs

    with tempfile.TemporaryDirectory(prefix="tvm-vs-ort-") as tmp:
        tmp = Path(tmp)
        _, before, pruned, after = pruned_resnet18(tmp)
        print(f"pruned ResNet-18: {before.macs / 1e9:.2f} -> {after.macs / 1e9:.2f} GMACs, "
              f"{before.params / 1e6:.1f}M -> {after.params / 1e6:.1f}M params")

        target = TargetSpec(name="host", tvm={"kind": "llvm", "num-cores": args.threads})
        t0 = time.monotonic()
        artifact = TvmBackend().compile(pruned, target, tmp / "tvm", {
            "tuning_trials": args.trials, "tuning_trials_per_task": args.per_task,
            "tuning_strategy": args.strategy,
            "tuning_cache": str(args.cache or tmp / "tuning")})
        build_s = time.monotonic() - t0
        tuning = artifact.notes["tuning"]
        tuned = "tasks" in tuning
        print(f"TVM target: {artifact.target['tvm']}")
        if tuned:
            print(f"tuning: {tuning['tasks']} tasks ({tuning['reused']} from the database, "
                  f"{len(tuning['tuned'])} tuned, {len(tuning['untuned'])} too light to tune), "
                  f"{args.trials} trials budget ({args.strategy}), {tuning['seconds']} s")
        print(f"compile + tune total: {build_s:.0f} s")

        import tvm

        vm = load_library(artifact)
        feeds = random_inputs(artifact.inputs, seed=0)
        name = next(iter(artifact.inputs))
        x_tvm = tvm.runtime.tensor(feeds[name])
        main_fn = vm["main"]
        sess = ort_session(pruned.proto, args.threads)
        out_names = [o.name for o in sess.get_outputs()]

        reference = reference_outputs(pruned.proto, feeds)
        tvm_out = main_fn(x_tvm)
        tvm_out = {artifact.outputs[0]: (tvm_out if hasattr(tvm_out, "numpy") else tvm_out[0]).numpy()}
        ort_out = dict(zip(out_names, sess.run(out_names, feeds)))
        err_tvm = compare(tvm_out, reference, 1e-4)
        err_ort = compare(ort_out, reference, 1e-4)

        for _ in range(3):  # warm-up
            main_fn(x_tvm)
            sess.run(out_names, feeds)
        t_tvm, t_ort = [], []
        for _ in range(args.rounds):
            t_ort += timed(lambda: sess.run(out_names, feeds), args.runs)
            t_tvm += timed(lambda: main_fn(x_tvm), args.runs)

    med_tvm, med_ort = float(np.median(t_tvm)), float(np.median(t_ort))
    print()
    print(f"{'backend':<14}{'median ms':>11}{'p90 ms':>9}{'max |err| vs ORT fp32':>24}")
    print(f"{'onnxruntime':<14}{med_ort:>11.2f}{np.percentile(t_ort, 90):>9.2f}{err_ort.worst:>24.2e}")
    print(f"{'tvm (tuned)' if tuned else 'tvm (untuned)':<14}{med_tvm:>11.2f}{np.percentile(t_tvm, 90):>9.2f}{err_tvm.worst:>24.2e}")
    ratio = med_tvm / med_ort
    print(f"\nTVM / ORT latency ratio: {ratio:.2f}x  (goal <= 1.2x: {'met' if ratio <= 1.2 else 'NOT met'}); "
          f"outputs within 1e-4: {'yes' if err_tvm.ok else 'NO'}; threads={args.threads}, "
          f"{args.rounds}x{args.runs} interleaved runs each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
