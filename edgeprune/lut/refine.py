"""Transferred LUT values replaced by measurements where plans land.

A transferred LUT (transfer.py) prices every channel count from a few anchors; what ships is
one plan. So before a plan is trusted, the entries its prediction rests on that are still
transferred are measured on the device — one point per layer, the one that answers that
layer's channel counts on its own — and so are the model's whole-model terms when they were
transferred (calibrate.py measures the points its variants land on first). The rest of the
LUT stays transferred until a plan lands there.
"""

from __future__ import annotations

from dataclasses import dataclass

from .layers import model_layers
from .predict import LatencyModel, structure_key
from .table import Lut


def has_transferred(lut: Lut | None) -> bool:
    return lut is not None and any(e.transferred for e in lut.entries.values())


def needs_refining(lut: Lut | None, model, channels: dict[str, tuple[int, int]] | None) -> bool:
    """Whether a prediction of `model` at `channels` rests on anything transferred."""
    if not has_transferred(lut):
        return False
    record = lut.models.get(structure_key(model))
    return record is None or bool(record.get("transferred")) or \
        bool(LatencyModel(lut, model_layers(model), 0.0).transferred(channels))


@dataclass
class Refined:
    lut: Lut
    measured: int       # entries measured
    calibrated: bool    # the whole-model terms were measured


def refine(model, plans: list[dict[str, tuple[int, int]] | None], device, backend: str, path,
           progress=None) -> Refined:
    """Measure on `device` what predictions of `model` at each of `plans` (channels per layer;
    None: dense) take from transferred values, into the LUT at `path`."""
    from .profiler import Profiler
    from .session import open_writer, profile_settings

    writer, _ = open_writer(device, backend, path)
    profiler = Profiler(device, writer, profile_settings(device, backend), progress)
    layers = model_layers(model)
    record = writer.lut.models.get(structure_key(model))
    calibrate = record is None or bool(record.get("transferred"))
    if calibrate:
        profiler.measure_rest(model, layers, getattr(model, "name", "model"), measure_transferred=True)
    lm = LatencyModel(writer.lut, layers, 0.0)
    profiler.ensure([p for channels in plans for p in lm.transferred(channels)], measured=True)
    return Refined(writer.lut, profiler.measured, calibrate)


def refine_on(spec, model, plans, backend: str, path, progress=None) -> Refined:
    """`refine` on the device `spec` names, opened for the call."""
    from ..devices.open import open_device

    device = open_device(spec)
    try:
        return refine(model, plans, device, backend, path, progress)
    finally:
        device.close()


def refined_model(lm, model, channels: dict[str, tuple[int, int]], spec, backend: str):
    """(latency model re-read, Refined) after refining where a plan of `model` lands
    (`channels`), or None when its prediction by `lm` rests on nothing transferred."""
    lut = getattr(lm, "lut", None)
    if not needs_refining(lut, model, channels):
        return None
    refined = refine_on(spec, model, [channels], backend, lut.path)
    return LatencyModel.for_model(refined.lut, model), refined
