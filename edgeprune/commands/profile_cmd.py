"""`edgeprune profile --device DEVICE [--backend ort|tvm] [--model MODEL ...] [-o LUT] [--resume]
[--transfer-from LUT [--anchors N]]`."""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from pathlib import Path

import click

from ..devices.open import open_device
from ..errors import UsageError
from ..lut.profiler import Profiler
from ..lut.session import BACKENDS, open_writer, profile_settings
from ..lut.table import load_lut
from ..lut.transfer import DEFAULT_ANCHORS, check_source, transfer_lut
from .common import device_option, open_model


@click.command("profile")
@device_option()
@click.option("--backend", type=click.Choice(BACKENDS), default="ort", show_default=True)
@click.option("--model", "models", multiple=True,
              help="Measure the entries this model needs (repeatable): .onnx or package.module:function.")
@click.option("--input-shape", default=None, help="Input shape for factories / dynamic dims, e.g. 1x3x224x224.")
@click.option("--weights", default=None, help="State dict for a PyTorch factory MODEL.")
@click.option("-o", "--output", "output", default=None,
              help="LUT file (default: ~/.cache/edgeprune/luts/<device>-<backend>[-<cpu>]-<config>.json; "
                   "EDGEPRUNE_CACHE_DIR moves it).")
@click.option("--resume", is_flag=True,
              help="Keep every entry already in the LUT and measure only what is missing.")
@click.option("--transfer-from", "transfer_from", default=None, metavar="LUT",
              help="Start this device's LUT from another device's LUT (same backend): a few anchor "
                   "entries are measured here and the rest scaled, marked transferred.")
@click.option("--anchors", type=int, default=None,
              help=f"With --transfer-from: entries measured here to fit the scale (default {DEFAULT_ANCHORS}).")
def command(device_spec, backend, models, input_shape, weights, output, resume, transfer_from, anchors):
    """Measure the latency (and energy where a sensor exists) lookup table on a device.

    Without --resume every entry the models need is measured again and merged into the LUT
    as a new run; with --resume an interrupted run continues without re-measuring. With
    --transfer-from the LUT starts from another device's; --model then measures only what the
    transferred LUT lacks, and the model's whole-model terms."""
    if output is not None and not output.endswith(".json"):
        raise UsageError(f"-o {output}: a LUT is a .json file")
    if output is not None and Path(output).exists():
        load_lut(output)  # a corrupt or foreign LUT is refused before any work starts
    if anchors is not None and transfer_from is None:
        raise UsageError("--anchors: only with --transfer-from")
    if transfer_from is not None:
        anchors = DEFAULT_ANCHORS if anchors is None else anchors
        if anchors < 2:
            raise UsageError(f"--anchors {anchors}: at least 2 (a size and a ratio)")
        check_source(transfer_from, backend)
    loaded = [(spec, open_model(spec, input_shape, weights).model) for spec in models]
    device = open_device(device_spec)
    try:
        if transfer_from is not None:
            output = str(_transfer(device, backend, transfer_from, output, anchors))
            resume = True   # the transferred entries are what the models reuse
        if loaded or transfer_from is None:
            _profile(device, backend, loaded, output, resume)
    finally:
        device.close()


def _transfer(device, backend, source, output, anchors) -> Path:
    t = transfer_lut(source, device, backend, output, anchors)
    fit = t.fit
    loo = f", anchors left out predicted within {fit.loo_error:.1%} (median)" if fit.loo_error is not None else ""
    click.echo(f"{t.path}: {t.transferred} entries transferred from {t.source} "
               f"(marked transferred), {t.anchors} anchors measured ({t.seconds:.0f} s); "
               f"new/old = {math.exp(fit.a):.3f} at the anchors' centre, slope {fit.b:+.3f} in log time{loo}")
    return t.path


def _profile(device, backend, loaded, output, resume):
    settings = profile_settings(device, backend)
    started = time.monotonic()
    with _progress() as progress:
        task = progress.add_task("channel step", total=None)
        writer, path = open_writer(device, backend, output)
        lut = writer.lut
        click.echo(f"LUT {path}: device {lut.header['device']}, backend {backend}, channel step "
                   f"{lut.channel_step}, {len(lut.entries)} entries already there", err=True)
        total = [0]

        def on_progress(done, new_total):
            total[0] += new_total
            progress.update(task, total=total[0], advance=done)

        lines = []
        measured = reused = 0
        for spec, model in loaded:
            progress.update(task, description=f"profiling {spec}")
            profiler = Profiler(device, writer, settings, on_progress, fresh=not resume)
            layers = profiler.profile_model(model, model.name)
            rest = profiler.measure_rest(model, layers, model.name)
            measured += profiler.measured
            reused += profiler.reused
            lines.append(f"  {spec}: {len(layers)} fused layers, {len({l.signature.key for l in layers})} "
                         f"signatures; dense {rest['dense_ms']:.2f} ms measured; whole-model terms: scale "
                         f"{rest['scale']:.3f}, rest {rest['rest_ms']:+.2f} ms")
    elapsed = time.monotonic() - started
    click.echo(f"{path}: {measured} entries measured, {reused} kept from before, "
               f"{len(writer.lut.entries)} in the LUT ({elapsed:.0f} s)")
    for line in lines:
        click.echo(line)
    if not loaded:
        click.echo("  no --model given: entries are measured per model (--model) or on demand by "
                   "`edgeprune latency`")


@contextmanager
def _progress():
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    console = Console(stderr=True)
    # a live bar on a terminal; in logs (CI) the summary lines say it all
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("entries"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                  console=console, transient=False, disable=not console.is_terminal) as progress:
        yield progress
