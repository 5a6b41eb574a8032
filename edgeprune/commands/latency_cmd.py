"""`edgeprune latency MODEL --device DEVICE [--backend ...] [--measure] [--json]`."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from ..devices.base import BenchTask
from ..devices.profile import parse_device
from ..errors import DeviceError
from ..frontend.load import save_model
from ..lut.api import latency_model
from ..lut.session import BACKENDS, profile_settings
from .common import device_option, echo_json, model_options, open_model


@click.command("latency")
@model_options
@device_option()
@click.option("--backend", type=click.Choice(BACKENDS), default="ort", show_default=True)
@click.option("--lut", default=None, help="LUT file (default: the device's LUT in the user cache, ~/.cache/edgeprune/luts/).")
@click.option("--measure", is_flag=True, help="Also time the whole model on the device.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def command(model, input_shape, weights, device_spec, backend, lut, measure, as_json):
    """Predicted latency/energy from the LUT; with --measure, also measured on the device.

    On the local host, LUT entries the model needs but the LUT lacks are measured first."""
    m = open_model(model, input_shape, weights).model
    spec = parse_device(device_spec)
    lm = latency_model(m, spec, backend, lut)
    pred = lm.predict()
    out = {"model": model, "device": device_spec, "backend": backend,
           "lut": None if lm.estimated else str(lm.lut.path),
           "predicted": {"latency_ms": pred.latency_ms, "energy_mj": pred.energy_mj,
                         "energy_source": pred.energy_source,
                         "latency_source": "estimated (roofline prior)" if pred.estimated else "LUT",
                         "rest_ms": pred.rest_ms,
                         # values scaled from another device's LUT (lut/transfer.py) it rests on
                         "transferred_entries": 0 if lm.estimated else len(lm.transferred())},
           "measured": _measure(m, spec, backend) if measure else None}
    if as_json:
        echo_json(out)
        return
    p = out["predicted"]
    est = " [estimated: roofline prior from published peaks]" if pred.estimated else ""
    if p["transferred_entries"]:
        est = (f" [{p['transferred_entries']} LUT entries transferred from "
               f"'{lm.lut.header['transferred_from']['device']}', not measured here]")
    click.echo(f"{model} on {device_spec} ({backend}):")
    click.echo(f"  predicted  {p['latency_ms']:9.3f} ms{est}   energy {p['energy_mj']:.3f} mJ "
               f"[{_energy_label(p['energy_source'])}]")
    if out["measured"]:
        r = out["measured"]
        energy = (f"energy {r['energy_mj']:.3f} mJ ({r['energy_source']})" if r["energy_mj"] is not None
                  else "energy not measured (no sensor)")
        click.echo(f"  measured   {r['median_ms']:9.3f} ms median, {r['p90_ms']:.3f} ms p90, "
                   f"{r['count']} runs ({r['clock']} clock)   {energy}")
        click.echo(f"  predicted / measured = {p['latency_ms'] / r['median_ms']:.3f}")


def _energy_label(source: str) -> str:
    return source if source.startswith("estimated") else f"measured: {source}"


def _measure(model, spec, backend) -> dict:
    from ..devices.open import open_device

    device = open_device(spec)
    try:
        settings = profile_settings(device, backend)
        with tempfile.TemporaryDirectory(prefix="edgeprune-latency-") as tmp:
            path = Path(tmp) / "model.onnx"
            save_model(model.proto, path)
            task = BenchTask(id="model", model=path, backend=backend, threads=settings.threads,
                             cores=settings.cores, warmup=5, repeats=30, min_seconds=1.0,
                             options=settings.options, clock=settings.clock)
            (r,) = device.measure([task])
    finally:
        device.close()
    if not r.ok:
        raise DeviceError(f"{spec.raw}: timing the model failed: {r.error}")
    return {"median_ms": r.median_ms, "p90_ms": r.p90_ms, "count": r.count, "clock": settings.clock,
            "energy_mj": r.energy_mj, "energy_source": r.energy_source, "state": r.state}
