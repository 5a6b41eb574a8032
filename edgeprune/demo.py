"""`make demo`: the main job on the default `host` target.

Compiles the pretrained EfficientNet-Lite0 for this machine at half its dense latency with
int8, then prints where the report is and its headline figures. Where `compile` is not in
this build yet, it shows channel analysis and pruning on the same model instead.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from .cli import main as cli

OUT = Path("out/demo")


def _run(args: list[str]) -> int:
    print("$ edgeprune " + " ".join(args), flush=True)
    return cli(args)


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    model = "edgeprune.zoo:efficientnet_lite0"
    shape = ["--input-shape", "1x3x224x224"]
    if importlib.util.find_spec("edgeprune.commands.compile_cmd") is not None:
        data = OUT / "calibration.npz"
        if not data.exists():
            import numpy as np

            from .data import natural_images

            np.savez(data, input=natural_images(64, size=224, normalize="tflite"))
        rc = _run(["compile", model, *shape, "--target", "host", "--budget", "0.5x",
                   "--quantize", "int8", "--data", str(data), "-o", str(OUT / "efficientnet_lite0")])
        manifest = OUT / "efficientnet_lite0" / "manifest.json"
        if manifest.exists():
            m = json.loads(manifest.read_text())
            lat = m.get("latency_ms", {})
            print(f"\nreport: {OUT / 'efficientnet_lite0' / 'report.md'}")
            print(f"latency: dense {lat.get('dense_predicted')} ms → predicted {lat.get('predicted')} ms, "
                  f"measured {lat.get('measured_median')} ms")
            print(f"fidelity: {json.dumps(m.get('fidelity', {}))}")
        return rc
    onnx_path = OUT / "efficientnet_lite0.onnx"
    rc = _run(["inspect", model, *shape])
    if rc:
        return rc
    return _run(["prune", model, *shape, "--ratio", "0.5", "--criterion", "bn", "-o", str(onnx_path.with_name("pruned.onnx"))])


if __name__ == "__main__":
    sys.exit(main())
