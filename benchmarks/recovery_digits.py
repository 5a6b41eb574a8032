"""The digits CNN (scikit-learn's load_digits upsampled to 32x32) through every stage.

One run, printed side by side: test-split accuracy of the dense model, the pruned model
(half the channels of every prunable group by L1 norm, no recovery), the pruned model
after least-squares recovery (calibration: unlabelled training images), the pruned module
fine-tuned with distillation from the dense one (the plan applied to the PyTorch module,
then re-exported), its int8 QDQ model on ONNX Runtime, and that int8 model compiled by TVM
with integer kernels (agreement with ORT int8 in output quantization steps).

    .venv/bin/python benchmarks/recovery_digits.py [--ratio 0.5] [--epochs 8] [--ft-epochs 15]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeprune.data import digits  # noqa: E402
from edgeprune.fidelity import accuracy, outputs  # noqa: E402
from edgeprune.frontend.export import export_module  # noqa: E402
from edgeprune.frontend.load import load_model  # noqa: E402
from edgeprune.graph import analyze  # noqa: E402
from edgeprune.importance import scores  # noqa: E402
from edgeprune.quantize import quantize_int8  # noqa: E402
from edgeprune.recover import recover  # noqa: E402
from edgeprune.recover.finetune import FinetuneOptions, export, finetune  # noqa: E402
from edgeprune.recover.torch_apply import apply_plan  # noqa: E402
from edgeprune.rewrite import prune, ratio_keep  # noqa: E402
from edgeprune.zoo.digits import train_digits_cnn  # noqa: E402


def tvm_int8_outputs(proto, images: np.ndarray) -> np.ndarray:
    import tvm
    from tvm import relax
    from tvm.relax.frontend import onnx as relax_onnx

    from edgeprune.quantize.tvm_int8 import lower_qdq

    mod = lower_qdq(relax_onnx.from_onnx(proto, keep_params_in_input=False))
    vm = relax.VirtualMachine(tvm.compile(mod, target=tvm.target.Target({"kind": "llvm"})), tvm.cpu())
    return np.concatenate([vm["main"](tvm.runtime.tensor(images[i:i + 1])).numpy() for i in range(len(images))])


def output_step(proto) -> float:
    from onnx import numpy_helper

    inits = {t.name: t for t in proto.graph.initializer}
    dq = next(n for n in proto.graph.node if n.output[0] == proto.graph.output[0].name)
    return float(numpy_helper.to_array(inits[dq.input[1]]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--ft-epochs", type=int, default=15)
    ap.add_argument("--calib", type=int, default=256)
    ap.add_argument("--no-tvm", action="store_true")
    args = ap.parse_args(argv)

    train, test = digits("train", 32), digits("test", 32)
    module, _ = train_digits_cnn(epochs=args.epochs)
    with tempfile.TemporaryDirectory() as tmp:
        dense = load_model(export_module(module, (1, 1, 32, 32), Path(tmp) / "digits.onnx"))
        (name, _), = dense.input_shapes.items()
        analysis = analyze(dense)
        keep = ratio_keep(analysis, scores(dense, analysis, "l1"), args.ratio, 1)
        pruned = prune(dense, analysis, keep)
        calib = {name: np.array(train.images[:args.calib])}
        rows = []

        def row(stage, model, seconds=0.0):
            rows.append((stage, accuracy(model, {name: np.array(test.images)}, test.labels),
                         analyze(model).macs / analysis.macs if hasattr(model, "sha256") else float("nan"), seconds))

        row("dense", dense)
        row("pruned", pruned)
        t0 = time.perf_counter()
        recovered = recover(dense, pruned, analysis, keep, calib).model
        row("pruned + recovered", recovered, time.perf_counter() - t0)
        t0 = time.perf_counter()
        small = apply_plan(module, analysis, keep)
        finetune(small, module, np.array(train.images), np.array(train.labels),
                 FinetuneOptions(epochs=args.ft_epochs, lr=3e-3, batch_size=64))
        tuned = load_model(export(small, (1, 1, 32, 32), Path(tmp) / "tuned.onnx"))
        row("pruned + fine-tuned", tuned, time.perf_counter() - t0)
        t0 = time.perf_counter()
        int8 = quantize_int8(tuned, calib, method="minmax")
        row("  + int8 (ORT)", int8, time.perf_counter() - t0)

    print(f"digits CNN, test split ({len(test.labels)} images); pruned keeps {args.ratio:.2f} of each group's "
          f"channels (L1)")
    print(f"{'stage':<22} | {'accuracy':>8} | {'MACs':>5} | {'seconds':>7}")
    for stage, acc, macs, seconds in rows:
        print(f"{stage:<22} | {acc:>8.4f} | {macs:>5.2f} | {seconds:>7.1f}")
    if not args.no_tvm:
        images = np.array(test.images)
        ort_out = outputs(int8, {name: images})[0]
        tvm_out = tvm_int8_outputs(int8.proto, images)
        step = output_step(int8.proto)
        acc = float(np.mean(tvm_out.argmax(1) == test.labels))
        print(f"{'  + int8 (TVM, int kernels)':<22} | {acc:>8.4f} |       | max |TVM - ORT| = "
              f"{np.abs(tvm_out - ort_out).max() / step:.2f} output quantization steps")


if __name__ == "__main__":
    main()
