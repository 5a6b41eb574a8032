"""One call from a model and a device to something that predicts its latency."""

from __future__ import annotations

from pathlib import Path

from ..devices.profile import DeviceSpec, parse_device
from ..errors import UsageError
from .paths import default_lut_path
from .predict import LatencyModel, RooflineModel, structure_key
from .session import load_device_lut


def latency_model(model, device: str | DeviceSpec = "host", backend: str = "ort",
                  lut: str | Path | None = None, measure_missing: bool = True,
                  progress=None) -> LatencyModel | RooflineModel:
    """The latency model of `model` (a loaded Model) on `device`.

    - A measured LUT (`lut`, or the device's default one) → LatencyModel. On the local host,
      entries and the rest term the model needs but the LUT lacks are measured first (saved
      into the LUT) when `measure_missing`; elsewhere they are a UsageError saying to run
      `edgeprune profile`.
    - No LUT, but the profile has a roofline prior → RooflineModel (every output `estimated`).
    """
    spec = parse_device(device) if isinstance(device, str) else device
    table = load_device_lut(spec, backend, lut) if lut is None or Path(lut).exists() or spec.kind != "local" \
        else None
    if table is None and spec.kind != "local":
        if spec.profile is not None and spec.profile.roofline:
            return RooflineModel.for_model(spec.profile.roofline, model)
        raise UsageError(f"--device {spec.raw}: no LUT at {default_lut_path(spec, backend)} and no roofline "
                         f"prior; run `edgeprune profile --device {spec.raw} --backend {backend} --model MODEL`")
    if table is None or _incomplete(table, model):
        if spec.kind != "local" or not measure_missing:
            where = table.path if table is not None else default_lut_path(spec, backend)
            raise UsageError(f"{where}: the LUT lacks entries for this model; run `edgeprune profile "
                             f"--device {spec.raw} --backend {backend} --model MODEL --resume`")
        table = measure_model_entries(model, spec, backend, lut, progress)
    _check_belongs(table, spec, backend)
    return LatencyModel.for_model(table, model)


def _check_belongs(table, spec: DeviceSpec, backend: str) -> None:
    """A LUT answers only for the device, backend and CPU it was measured on."""
    device = spec.profile.name if spec.profile is not None else spec.raw
    header = table.header
    if header.get("device") != device:
        raise UsageError(f"{table.path}: this LUT was measured on device '{header.get('device')}', "
                         f"not '{device}'")
    if header.get("backend") != backend:
        raise UsageError(f"{table.path}: this LUT is for backend '{header.get('backend')}', not '{backend}'")
    from ..backends.runtime import key_mismatch
    from .session import spec_runtime

    why = key_mismatch(header.get("runtime"), spec_runtime(spec, backend))
    if why:
        raise UsageError(f"{table.path}: this LUT cannot price artifacts for {spec.raw}: {why}; "
                         f"give another --lut, or let edgeprune measure one at its default place")
    if spec.kind == "local" and header.get("fingerprint"):
        from ..devices.host import cpu_fingerprint
        if header["fingerprint"] != cpu_fingerprint():
            raise UsageError(f"{table.path}: this LUT was measured on CPU '{header['fingerprint']}', "
                             f"this machine is '{cpu_fingerprint()}'")


def _incomplete(table, model) -> bool:
    lm = LatencyModel.for_model(table, model)
    return lm.rest_ms is None or bool(lm.missing())


def measure_model_entries(model, spec: DeviceSpec, backend: str, lut=None, progress=None):
    """Profile what `model` needs on the device into its LUT (resuming: nothing measured twice)."""
    from ..devices.open import open_device
    from .profiler import Profiler
    from .session import open_writer, profile_settings

    device = open_device(spec)
    try:
        writer, _ = open_writer(device, backend, lut)
        profiler = Profiler(device, writer, profile_settings(device, backend), progress)
        profiler.profile_model(model, getattr(model, "name", "model"))
        return writer.lut
    finally:
        device.close()


__all__ = ["latency_model", "measure_model_entries", "structure_key"]
