"""Options and helpers shared by commands: MODEL and DATA arguments, output paths, JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..errors import UsageError


def model_options(fn):
    """MODEL: an .onnx file or a PyTorch factory `package.module:function`."""
    fn = click.option("--weights", type=str, default=None,
                      help="State dict for a PyTorch factory (loaded with weights_only=True).")(fn)
    fn = click.option("--input-shape", type=str, default=None,
                      help="Input shape, e.g. 1x3x224x224 (needed for factories and dynamic dims).")(fn)
    return click.argument("model", type=str)(fn)


DEVICE_HELP = "DEVICE: a profile name or .toml, adb:SERIAL, ssh:USER@HOST[:PORT] or rpc:HOST:PORT/KEY."


def device_option(name: str = "device_spec", default: str | None = "host", help: str = DEVICE_HELP):
    """`--device DEVICE`, the contract's name for it, with `--target` as an alias on every
    command: `compile` and `verify` were written with `--target`, `profile`, `latency` and
    `plan` with `--device`, and scripts use both. In edgeprune.toml both keys work too."""
    return click.option("--device", "--target", name, default=default, show_default=default is not None,
                        metavar="DEVICE", help=help)


def data_options(fn):
    fn = click.option("--std", type=str, default=None, help="Per-channel std for image folders, e.g. 58.4,57.1,57.4")(fn)
    fn = click.option("--mean", type=str, default=None, help="Per-channel mean for image folders.")(fn)
    fn = click.option("--image-size", type=int, default=None, help="Image side for image folders.")(fn)
    return click.option("--data", type=str, default=None,
                        help="Calibration data: an .npz keyed by input name, or a folder of images.")(fn)


class Loaded:
    """A resolved MODEL: the ONNX Model and, for factories, the torch module."""

    def __init__(self, model, module=None):
        self.model = model
        self.module = module


def open_model(spec: str, input_shape: str | None = None, weights: str | None = None) -> Loaded:
    try:
        from ..frontend.resolve import resolve_model
    except ImportError:
        resolve_model = None
    if resolve_model is not None:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="edgeprune-") as tmp:
            r = resolve_model(spec, input_shape=input_shape, weights=weights, workdir=Path(tmp))
            return Loaded(r.model, getattr(r, "module", None))
    from ..frontend.load import load_model

    if not spec.endswith(".onnx") and ":" in spec:
        raise UsageError(f"MODEL '{spec}': PyTorch factories are not available in this build")
    shapes = None
    if input_shape:
        shapes = {"__single__": parse_shape(input_shape)}
    return Loaded(load_model(spec, shapes))


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--input-shape '{text}': expected dims like 1x3x224x224") from None
    if not dims or any(d <= 0 for d in dims):
        raise UsageError(f"--input-shape '{text}': dims must be positive")
    return dims


def load_data_option(spec, model, image_size=None, mean=None, std=None, limit=None):
    """DATA → {input name: array}, or None when not given."""
    if not spec:
        return None
    from ..data import load_data

    return load_data(spec, list(model.input_shapes), model.input_shapes, image_size=image_size,
                     mean=mean, std=std, limit=limit)


def check_output_path(path: str, suffix: str | None = None) -> Path:
    """Refuse an output path we could not write, before any work is done."""
    out = Path(path)
    if out.exists() and out.is_dir():
        raise UsageError(f"-o {path}: is a directory")
    if suffix and out.suffix != suffix:
        raise UsageError(f"-o {path}: expected a {suffix} file")
    parent = out.parent if str(out.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise UsageError(f"-o {path}: parent is not a directory")
    return out


def echo_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


def human(n: float) -> str:
    for unit in ("", "K", "M", "G", "T"):
        if abs(n) < 1000:
            return f"{n:.1f}{unit}" if unit else f"{int(n)}"
        n /= 1000
    return f"{n:.1f}P"


def gate_options(fn):
    """The four gate flags, for `compile` and `verify`."""
    fn = click.option("--max-size", type=float, default=None,
                      help="Gate: deployed model size in MB (10^6 bytes).")(fn)
    fn = click.option("--min-fidelity", type=float, default=None,
                      help="Gate: agreement with the dense model on DATA, 0..1: top-1 agreement "
                           "(classifiers, class maps), box recall at IoU 0.5 (YOLO-style detectors), "
                           "else cosine similarity (heat maps, regressions); the report names it.")(fn)
    fn = click.option("--max-energy", type=float, default=None,
                      help="Gate: energy per inference in mJ (measured, else estimated).")(fn)
    return click.option("--max-latency", type=float, default=None,
                        help="Gate: measured median latency on the target in ms.")(fn)
