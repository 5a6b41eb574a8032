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

from .devices.energy import describe_sensor
from .errors import DeviceError

MEASURE_REPEATS = 30
# the dense model the artifact was built from, as compile loaded it: `verify` re-checks
# fidelity against it wherever the artifact folder has been moved (listed and hashed in the
# manifest like every file; not deployed, not weighed by --max-size)
REFERENCE = "reference/dense.onnx"
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
                   outdir: Path, inputs_kind: str, measure: bool = True,
                   reference: list[np.ndarray] | None = None) -> Checked:
    """Run `artifact` against `source_model` (the ONNX it was compiled from) on `inputs`
    (samples stacked on axis 0), and time it on `target`. `reference` is `source_model`'s
    outputs on `inputs` when the caller has them already."""
    from .fidelity import outputs as onnx_outputs

    if reference is None:
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
        from .backends.ort import load_session

        # one session for every sample: creating it per batch cost more than running it
        sess = load_session(artifact)

        def run_on_host(artifact, feeds):
            return dict(zip(artifact.outputs, sess.run(artifact.outputs, feeds)))
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

    from .devices.profile import parse_device

    from .shipped import check_runs_as_measured, measurable

    spec = parse_device(target)
    why_not = measurable(spec)
    if why_not:
        # a profile of a device we cannot reach (no address): the artifact is still built,
        # its latency stays the prediction, and the report says why
        return {"measured_on": None, "not_measured": why_not}
    batch = int(artifact.inputs[next(iter(artifact.inputs))]["shape"][0])
    device = open_device(spec)
    try:
        settings = profile_settings(device, artifact.backend)
        check_runs_as_measured(artifact, settings)
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
                           "energy_mj": r.energy_mj, "energy_source": describe_sensor(r.energy_source),
                           "energy_note": r.energy_note,
                           "device_state": state or r.state}
    if r.outputs:
        ref = {name: arr[:batch] for name, arr in zip(artifact.outputs, reference)}
        errs = [float(np.max(np.abs(np.asarray(r.outputs[k], np.float64) - ref[k].astype(np.float64))))
                for k in ref if k in r.outputs]
        out["device_outputs_max_abs_error"] = max(errs) if errs else None
    return out


# ----------------------------------------------------------------------------- verify OUTDIR
@dataclass
class Reverified:
    measured: Any          # gates.Measured
    lines: list[str]


def check_files(root: Path, manifest: dict[str, Any]) -> None:
    """Every file the manifest lists is there with its sha256 (UsageError otherwise)."""
    from .errors import UsageError
    from .outdir import sha256_file

    for rel, sha in sorted(manifest["files"].items()):
        p = root / rel
        if not p.is_file():
            raise UsageError(f"{root}: {rel} is listed in the manifest but missing")
        if sha256_file(p) != sha:
            raise UsageError(f"{root}: {rel} does not match its sha256 in the manifest (changed or corrupt)")


def _dense_reference(manifest: dict[str, Any], workdir: Path, root: Path | None = None):
    """The dense model the artifact was built from: the copy the artifact carries (its hash
    already checked against the manifest), else (artifacts built before it carried one) the
    source model again, refused if it is not byte-identical to the compiled one."""
    from .errors import UsageError
    from .frontend.resolve import resolve_model

    if root is not None and REFERENCE in manifest.get("files", {}):
        from .frontend.load import load_model

        return load_model(root / REFERENCE)
    src = manifest["source"]
    if src["kind"] == "module":
        raise UsageError("the artifact was compiled from an in-memory nn.Module: the dense reference "
                         "cannot be rebuilt, so fidelity cannot be re-checked")
    weights = (src.get("weights") or {}).get("path")
    r = resolve_model(src["path"], input_shape=src.get("input_shape"), weights=weights, workdir=workdir)
    if r.model.sha256 != src["sha256"]:
        raise UsageError(f"source {src['path']}: changed since compile (sha256 {r.model.sha256[:12]}…, "
                         f"the manifest says {src['sha256'][:12]}…)")
    return r.model


def _same_as_compiled(spec: str, manifest: dict[str, Any]) -> bool:
    from .outdir import sha256_file

    sha = (((manifest.get("fidelity") or {}).get("data")) or {}).get("sha256")
    return bool(sha) and Path(spec).is_file() and sha256_file(Path(spec)) == sha


def _recorded_data(manifest: dict[str, Any]) -> str | None:
    """The DATA file used at compile time, if it is still there unchanged."""
    from .outdir import sha256_file

    d = ((manifest.get("fidelity") or {}).get("data")) or {}
    path, sha = d.get("path"), d.get("sha256")
    if path and sha and Path(path).is_file() and sha256_file(Path(path)) == sha:
        return path
    return None


def reverify(root: Path, manifest: dict[str, Any], data: str | None = None, image_size=None,
             mean=None, std=None, target: str | None = None, measure: bool = True,
             need_fidelity: bool = False) -> Reverified:
    from .backends.base import Artifact
    from .data.evaluation import random_kind, random_samples, split_data
    from .errors import UsageError
    from .fidelity import compare, describe, outputs
    from .frontend.load import load_model

    check_files(root, manifest)
    lines = [f"{root}: {len(manifest['files'])} files match their sha256"]
    backend = manifest["target"]["backend"]
    artifact = Artifact.load(root if backend == "ort" else root / "tvm", backend)
    deployed_path = root / ("model.int8.onnx" if (root / "model.int8.onnx").is_file() else "model.onnx")
    deployed = load_model(deployed_path)
    spec = data or _recorded_data(manifest)
    if spec:
        from .data import load_data_for

        inputs = load_data_for(spec, deployed, image_size=image_size, mean=mean, std=std)
        kind = f"DATA {spec}"
        if _same_as_compiled(spec, manifest):
            # the compile's own DATA: judge on the samples it held out, as compile did
            _, inputs, split = split_data(inputs)
            kind += f" ({split['evaluation_samples']} {split['evaluation']} samples)"
    elif need_fidelity:
        raise UsageError("--min-fidelity needs --data (the DATA recorded at compile time is gone or changed)")
    else:
        inputs = random_samples(deployed)
        kind = random_kind()
    device = target or manifest["target"]["device"]
    fidelity = None
    with tempfile.TemporaryDirectory(prefix="edgeprune-verify-") as tmp:
        checked = check_artifact(artifact, deployed, inputs, device, root, kind, measure=measure)
        info = checked.info
        err = info.get("artifact_vs_model_max_abs_error")
        lines.append(f"artifact vs {deployed_path.name} on {kind}: max abs error "
                     + ("not runnable here" if err is None else f"{err:.3g}"))
        if spec:
            dense = _dense_reference(manifest, Path(tmp), root)
            cand = checked.outputs if checked.outputs is not None else outputs(deployed, inputs)
            fidelity = compare(outputs(dense, inputs), cand)
            lines.append(f"fidelity vs dense: {describe(fidelity.to_json())}, "
                         f"max abs error {fidelity.max_abs_error:.4g} ({fidelity.samples} samples)")
    rerun = Rerun(info, device, None if fidelity is None else fidelity.to_json(),
                  None if fidelity is None else f"{fidelity.samples} samples of {spec}")
    measured = measured_from(manifest, root, rerun)
    lat = manifest["latency_ms"]
    if info.get("measured_median_ms") is not None:
        lines.append(f"latency on {device}: median {measured.latency_ms:.3f} ms, p90 {info['measured_p90_ms']:.3f} ms "
                     f"(compiled: {lat['measured_median']} ms)")
    elif measured.latency_ms is not None:
        lines.append(f"latency: {measured.latency_source}: {measured.latency_ms:.3f} ms")
    else:
        lines.append(f"latency: {measured.latency_source}")
    return Reverified(measured, lines)


# ----------------------------------------------------------------------------- what the gates see
@dataclass(frozen=True)
class Rerun:
    """What running the artifact again found (`verify OUTDIR`), over what compile recorded."""

    info: dict[str, Any]            # check_artifact's info
    device: str                     # where it was timed (or would have been)
    fidelity: dict[str, Any] | None  # fidelity.compare(...).to_json() against the dense model
    fidelity_on: str | None         # "N samples of DATA"


def measured_from(manifest: dict[str, Any], root: Path, rerun: Rerun | None = None):
    """What the gates see: compile judges its manifest; `verify OUTDIR` judges the manifest
    under a re-run of the same bytes. One set of rules for both, so they cannot drift (they
    did once, on whether an estimate may pass a latency gate):
    latency is measured on the device or absent (a prediction never passes); a re-run that
    did not time (--no-measure) keeps the compile's measurement of the same bytes (hashes
    checked); energy is measured now, else measured at compile, else predicted; fidelity is
    the last stage's agreement with the dense model (or the re-run's); size weighs the
    deployed files."""
    from .fidelity import judged
    from .gates import Measured, latency_for_gate

    lat, en, v = manifest["latency_ms"], manifest["energy_mj"], manifest["verify"]
    timed_now = rerun is not None and ("measured_median_ms" in rerun.info or "not_measured" in rerun.info)
    if timed_now:
        latency, lsrc = latency_for_gate(rerun.info.get("measured_median_ms"), rerun.device, lat.get("predicted"),
                                         bool(lat.get("estimated")), rerun.info.get("not_measured"))
    elif rerun is not None and lat.get("measured_median") is not None:
        latency = lat["measured_median"]
        lsrc = f"measured median on {lat.get('measured_on')} at compile time (not re-measured: --no-measure)"
    elif rerun is not None:
        latency, lsrc = latency_for_gate(None, rerun.device, lat.get("predicted"), bool(lat.get("estimated")))
    else:
        latency, lsrc = latency_for_gate(lat.get("measured_median"), lat.get("measured_on"), lat.get("predicted"),
                                         bool(lat.get("estimated")), v.get("not_measured"))
    if rerun is not None and rerun.info.get("energy_mj") is not None:
        energy, esrc = rerun.info["energy_mj"], f"measured ({rerun.info['energy_source']})"
    elif en.get("measured") is not None:
        energy = en["measured"]
        esrc = f"measured{' at compile' if rerun is not None else ''} ({en.get('measured_source')})"
    else:
        energy, esrc = en.get("predicted"), f"predicted ({en.get('predicted_source')})"
    if rerun is not None:
        fid, fsrc = rerun.fidelity, f"with the dense model on {rerun.fidelity_on}"
    else:
        stages = (manifest.get("fidelity") or {}).get("stages") or {}
        which = next((s for s in ("artifact", "int8", "finetuned", "recovered", "pruned") if s in stages), None)
        fid = stages[which] if which else None
        fsrc = f"of the {which} model with the dense model on {fid['samples']} DATA samples" if fid else ""
    fidelity, what = judged(fid) if fid else (None, "")
    files = (rerun.info if rerun is not None else v).get("deployed_files") or []
    size = sum((root / f).stat().st_size for f in files if (root / f).is_file()) / 1e6 if files else None
    return Measured(latency_ms=latency, latency_source=lsrc, energy_mj=energy, energy_source=esrc,
                    fidelity=fidelity, fidelity_source=f"{what} {fsrc}" if fid else "no DATA",
                    size_mb=size, size_source=", ".join(files))
