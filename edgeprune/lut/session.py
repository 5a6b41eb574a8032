"""Opening a device's LUT for measuring or predicting: its path, header and settings.

The header names what the LUT belongs to (device, backend, CPU, threads), its channel
step and, where the device times a reference model beside every task, the nominal speed its
entries are normalised to (reference.py); a new LUT for a profile whose step is "measure"
gets the step (and that speed) measured on the device first. An existing LUT keeps its step, so `--resume` measures nothing twice.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..backends.runtime import RuntimeConfig
from ..devices.profile import DeviceSpec, parse_device
from ..errors import UsageError
from .paths import default_lut_path, spec_runtime  # noqa: F401 (importers read it here)
from .profiler import Settings, measure_channel_step
from .reference import measure_nominal
from .table import Lut, LutWriter, load_lut

BACKENDS = ("ort", "tvm")


def device_spec(device) -> DeviceSpec:
    return getattr(device, "parsed", None) or parse_device(device.spec)


def profile_settings(device, backend: str) -> Settings:
    if backend not in BACKENDS:
        raise UsageError(f"--backend {backend}: expected one of {', '.join(BACKENDS)}")
    profile = getattr(device, "profile", None)
    runtime = device_runtime(device, backend)
    options = runtime.runner_options()
    threads = runtime.threads
    cores = None
    if hasattr(device, "default_cores"):
        cores = device.default_cores()
    elif profile is not None and profile.cores:
        cores = list(profile.cores)
    clock = profile.clock if profile is not None and threads == 1 else "wall"
    timing = profile.timing if profile is not None else {}
    tvm = {}
    if backend == "tvm":
        from ..backends.base import TargetSpec
        if profile is None or not profile.tvm_target():
            raise UsageError("--backend tvm: the device profile has no [runtimes.tvm] target")
        tvm = {"tvm_target": TargetSpec.from_profile(profile), "tvm_trials": profile.tvm_trials}
    return Settings(backend=backend, threads=threads, cores=cores, options=options, clock=clock,
                    runtime=runtime, **timing, **tvm)


def device_runtime(device, backend: str) -> RuntimeConfig:
    """The runtime configuration artifacts for this device run under (backends/runtime.py):
    the one its LUT entries and dense references are timed in."""
    return spec_runtime(device_spec(device), backend)


def lut_header(device, backend: str, channel_step: int, step_sweep: dict | None = None,
               nominal_ms: float | None = None) -> dict:
    spec = device_spec(device)
    settings = profile_settings(device, backend)
    header = {"device": spec.profile.name if spec.profile else spec.raw, "backend": backend,
              "threads": settings.threads, "clock": settings.clock, "channel_step": int(channel_step),
              "runtime": settings.runtime.key()}
    if spec.kind == "local":
        from ..devices.host import cpu_fingerprint, cpu_model
        header["cpu"] = cpu_model()
        header["fingerprint"] = cpu_fingerprint()
    if backend == "tvm":
        header["tvm_trials"] = settings.tvm_trials
        header["tvm_target"] = dict(settings.tvm_target.tvm)
    if step_sweep:
        header["channel_step_sweep"] = step_sweep
    if nominal_ms:
        header["reference_ms"] = nominal_ms   # the speed every entry is normalised to (reference.py)
    return header


def open_writer(device, backend: str, path: str | Path | None = None) -> tuple[LutWriter, Path]:
    """The device's LUT opened for writing, created (with a measured step) if absent."""
    spec = device_spec(device)
    path = Path(path) if path else default_lut_path(spec, backend)
    if path.exists():
        existing = load_lut(path)
        header = lut_header(device, backend, existing.channel_step)
        return LutWriter(path, header), path
    step = spec.profile.channel_step if spec.profile else "measure"
    sweep = nominal = None
    settings = profile_settings(device, backend)
    with tempfile.TemporaryDirectory(prefix="edgeprune-step-") as tmp:
        if step == "measure":
            step, sweep = measure_channel_step(device, settings, Path(tmp))
            nominal = sweep.get("reference_ms")
        else:
            nominal = measure_nominal(device, settings, Path(tmp))
    return LutWriter(path, lut_header(device, backend, step, sweep, nominal)), path


def load_device_lut(spec: DeviceSpec, backend: str, path: str | Path | None = None) -> Lut | None:
    """The LUT to predict with, or None when none has been measured at the default place."""
    if path:
        return load_lut(path)
    default = default_lut_path(spec, backend)
    return load_lut(default) if default.exists() else None
