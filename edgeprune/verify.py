"""Running a compiled artifact to check it: on the target device (latency median/p90, energy
where a sensor exists, and the outputs of one sample), and on this host where the artifact
can run here (its outputs on every evaluation sample, against the model it was built from).

Used by `compile` (the verify stage) and by `edgeprune verify OUTDIR`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .errors import DeviceError

MEASURE_REPEATS = 30
MEASURE_MIN_SECONDS = 1.0


@dataclass
class Checked:
    info: dict[str, Any]                       # what goes into the manifest's "verify"
    outputs: list[np.ndarray] | None           # the artifact's outputs on every sample (host)


def deployed_files(artifact, outdir: Path) -> list[str]:
    """The files a device needs, relative to OUTDIR (what --max-size weighs)."""
    root = Path(artifact.root)
    roles = [r for r in ("model", "kernels") if r in artifact.files]
    return sorted((root / artifact.files[r]).relative_to(outdir).as_posix() for r in roles)


def check_artifact(artifact, source_model, inputs: Mapping[str, np.ndarray], target: str,
                   outdir: Path, inputs_kind: str, measure: bool = True) -> Checked:
    """Run `artifact` against `source_model` (the ONNX it was compiled from) on `inputs`
    (samples stacked on axis 0), and time it on `target`."""
    from .fidelity import outputs as onnx_outputs

    reference = onnx_outputs(source_model, inputs)
    info: dict[str, Any] = {"inputs": inputs_kind, "samples": int(len(reference[0])),
                            "backend": artifact.backend, "deployed_files": deployed_files(artifact, outdir)}
    host_out = None
    if artifact.runnable_on_host:
        host_out = _run_on_host(artifact, inputs)
        info["artifact_vs_model_max_abs_error"] = _max_err(reference, host_out)
    else:
        info["artifact_vs_model_max_abs_error"] = None
        info["host_run"] = f"not runnable on this host (built for {artifact.target.get('triple')})"
    if measure:
        info.update(_measure(artifact, inputs, reference, target))
    return Checked(info, host_out)


def _run_on_host(artifact, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    if artifact.backend == "ort":
        from .backends.ort import run_on_host
    else:
        from .backends.tvm import run_on_host
    batch = int(artifact.inputs[next(iter(artifact.inputs))]["shape"][0])
    n = len(next(iter(inputs.values())))
    parts = []
    for start in range(0, n - n % batch if n >= batch else 0, batch):
        feeds = {k: np.ascontiguousarray(v[start:start + batch]) for k, v in inputs.items()}
        out = run_on_host(artifact, feeds)
        parts.append([np.asarray(out[name]) for name in artifact.outputs])
    return [np.concatenate(p, axis=0) for p in zip(*parts)]


def _max_err(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    n = min(len(a[0]), len(b[0]))
    return max(float(np.max(np.abs(x[:n].astype(np.float64) - y[:n].astype(np.float64)))) for x, y in zip(a, b))


def _measure(artifact, inputs, reference, target: str) -> dict[str, Any]:
    """Time the artifact on the device, pinned and clocked as the LUT was measured, on the
    first sample; compare the outputs the device returns with the host reference."""
    from .devices.base import BenchTask
    from .devices.open import open_device
    from .lut.session import profile_settings

    batch = int(artifact.inputs[next(iter(artifact.inputs))]["shape"][0])
    try:
        device = open_device(target)
    except DeviceError:
        raise
    try:
        settings = profile_settings(device, artifact.backend)
        with tempfile.TemporaryDirectory(prefix="edgeprune-verify-") as tmp:
            sample = Path(tmp) / "sample.npz"
            np.savez(sample, **{k: np.ascontiguousarray(v[:batch]) for k, v in inputs.items()})
            task = BenchTask(id="artifact", model=Path(artifact.root) / artifact.run["model"],
                             backend=artifact.run["backend"], inputs=sample, threads=settings.threads,
                             cores=settings.cores, warmup=settings.warmup + 2,
                             repeats=max(settings.repeats, MEASURE_REPEATS),
                             min_seconds=max(MEASURE_MIN_SECONDS, settings.min_seconds),
                             save_outputs=True, options=dict(artifact.run.get("options", {})),
                             clock=settings.clock)
            (r,) = device.measure([task])
        state = device.state()
    finally:
        device.close()
    if not r.ok:
        raise DeviceError(f"{target}: running the artifact failed: {r.error}")
    out: dict[str, Any] = {"measured_on": target, "measured_median_ms": r.median_ms,
                           "measured_p90_ms": r.p90_ms, "measured_count": r.count,
                           "clock": settings.clock, "threads": settings.threads,
                           "energy_mj": r.energy_mj, "energy_source": r.energy_source,
                           "device_state": state or r.state}
    if r.outputs:
        ref = {name: arr[:batch] for name, arr in zip(artifact.outputs, reference)}
        errs = [float(np.max(np.abs(np.asarray(r.outputs[k], np.float64) - ref[k].astype(np.float64))))
                for k in ref if k in r.outputs]
        out["device_outputs_max_abs_error"] = max(errs) if errs else None
    return out
