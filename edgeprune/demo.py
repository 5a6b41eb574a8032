"""`make demo`: the main job on the default `host` target.

Compiles the pretrained EfficientNet-Lite0 for this machine at half its dense latency with
int8 — LUT entries the model needs measured on the spot (only the missing ones), refit
importance (compile's default with DATA), the latency-saliency knapsack fitted on this CPU,
reconstruction, int8 QDQ, the ONNX Runtime artifact timed on this CPU — then prints where the
report is and its headline figures.

DATA is natural-image views (crops, flips, rescalings of the pictures bundled with
scikit-image and scikit-learn), normalised as the model expects: 256 of them are held out to
measure fidelity (a 95% interval of about ±6 points), the rest calibrate. Nothing is
downloaded.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .cli import main as cli

OUT = Path("out/demo")
MODEL = "efficientnet_lite0"
SAMPLES = 512  # 256 calibrate importance, reconstruction and int8; 256 are held out for fidelity


def _run(args: list[str]) -> int:
    print("$ edgeprune " + " ".join(args), flush=True)
    return cli(args)


def calibration_data(path: Path) -> Path:
    if not path.exists():
        import numpy as np

        from . import zoo
        from .data import natural_images

        size = zoo.input_shape(MODEL)[-1]
        from .atomic import replacing

        with replacing(path) as tmp:
            np.savez(tmp, input=natural_images(SAMPLES, size=size, normalize=zoo.entry(MODEL).normalize))
    return path


def main() -> int:
    started = time.monotonic()
    OUT.mkdir(parents=True, exist_ok=True)
    data = calibration_data(OUT / f"natural-images-{SAMPLES}.npz")  # a new count, a new file
    outdir = OUT / MODEL
    rc = _run(["compile", f"edgeprune.zoo:{MODEL}", "--input-shape", "1x3x224x224", "--target", "host",
               "--budget", "0.5x", "--quantize", "int8", "--data", str(data), "-o", str(outdir)])
    if rc in (0, 4) and (outdir / "manifest.json").exists():
        # compile has printed the headline figures; add where everything is and the sizes
        from .report.manifest import load_manifest

        m = load_manifest(outdir)
        print(f"\nreport: {outdir / 'report.md'}  (plots: {', '.join(sorted(p.name for p in (outdir / 'plots').glob('*.png')))})")
        print(f"MACs {m['macs']['after'] / m['macs']['before']:.2f}x and parameters "
              f"{m['params']['after'] / m['params']['before']:.2f}x of dense; "
              f"artifact files: {', '.join(m['verify']['deployed_files'])}")
    print(f"\ndemo wall time: {time.monotonic() - started:.0f} s", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
