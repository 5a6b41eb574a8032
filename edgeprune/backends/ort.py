"""ONNX Runtime backend: an offline-optimised ONNX model, the ORT-format model mobile builds
of ONNX Runtime load, and the session configuration (execution providers, optimisation
level, threads) the device asks for, written as JSON beside them.

Offline optimisation level of the saved ONNX model: `extended` for CPU-only targets, `basic`
when the device uses another execution provider (XNNPACK, NNAPI, QNN). Never `all` offline
for the portable file: it embeds the host's NCHWc layout (x86-only kernels), and extended
fusions (FusedConv ...) are CPU-EP contrib ops another provider cannot take. The session that
runs it on the device loads it at the runtime configuration's level (`all`, see runtime.py),
which applies the layout optimisations for that device's own CPU; that is the configuration
the LUT and the dense reference were timed in, and the one `ort_config.json` records.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import onnx

from ..errors import InternalError, UsageError
from ..atomic import write_text
from .base import Artifact, TargetSpec, as_proto, io_spec
from .runtime import ACCELERATOR_EPS, runtime_config
from .verify import compare, random_inputs, reference_outputs

CONFIG_FILE = "ort_config.json"
OPT_MODEL = "model.opt.onnx"
ORT_MODEL = "model.ort"

_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
           "all": "ORT_ENABLE_ALL"}
# runtimes/backend_ort.py names levels by their short names


class OrtBackend:
    name = "ort"

    def compile(self, model, target: TargetSpec, outdir, options: Mapping[str, Any] | None = None) -> Artifact:
        import onnxruntime as ort

        options = dict(options or {})
        check = options.pop("check", True)
        atol = float(options.pop("atol", 1e-4))
        if options:
            raise UsageError(f"ort backend: unknown options {sorted(options)} (known: check, atol)")
        proto = as_proto(model)
        inputs, outputs = io_spec(proto)
        runtime = runtime_config(target, "ort")
        providers = runtime.providers
        level = "basic" if set(providers) & ACCELERATOR_EPS else "extended"
        outdir = Path(outdir)
        outdir.mkdir(parents=True, exist_ok=True)

        session_config = dict(runtime.session_config)
        src = proto.SerializeToString()
        _optimise(src, outdir / OPT_MODEL, level, session_config, ort_format=False)
        # An ORT-format model gets no layout optimisation when it is loaded, so for this host
        # (the one CPU it runs on) it is saved with them applied; for a device it stays portable.
        ort_level = runtime.optimization if target.is_host else level
        _optimise(src, outdir / ORT_MODEL, ort_level, session_config, ort_format=True)

        config = {
            # what runs, timed on the target exactly like the LUT and the dense reference
            "model": OPT_MODEL,
            "ort_format_model": ORT_MODEL,
            "providers": list(providers),
            "provider_options": [dict(target.ort_provider_options.get(p, {})) for p in providers],
            "graph_optimization_level": _LEVELS[runtime.optimization],
            "session_config": session_config,
            "intra_op_num_threads": runtime.threads,
            "runtime": runtime.key(),
        }
        write_text(outdir / CONFIG_FILE, json.dumps(config, indent=2) + "\n")

        artifact = Artifact(
            backend=self.name, root=outdir,
            files={"model": OPT_MODEL, "ort_model": ORT_MODEL, "config": CONFIG_FILE},
            target={"device": target.name, "triple": target.triple, "providers": list(providers)},
            run={"backend": "ort", "model": OPT_MODEL, "options": runtime.runner_options(),
                 "threads": runtime.threads},
            inputs=inputs, outputs=outputs,
            notes={"offline_optimization_level": level, "ort_format_optimization_level": ort_level,
                   "runtime": runtime.key(), "ort_version": ort.__version__},
        )
        if check:
            artifact.notes["host_check"] = check_on_host(artifact, proto, atol=atol)
            if not artifact.notes["host_check"]["ok"]:
                raise RuntimeError(f"ort backend: optimised model differs from the reference: "
                                   f"{artifact.notes['host_check']}")
        artifact.save()
        return artifact


def _optimise(src: bytes, dest: Path, level: str, session_config: Mapping[str, str], ort_format: bool) -> None:
    """Let ONNX Runtime optimise `src` and save the result (ONNX or ORT format) atomically."""
    import onnxruntime as ort

    tmp = dest.with_name(f".{dest.stem}.tmp{os.getpid()}{dest.suffix}")
    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[level])
    so.optimized_model_filepath = str(tmp)
    so.log_severity_level = 3
    for k, v in session_config.items():
        so.add_session_config_entry(k, v)
    if ort_format:
        so.add_session_config_entry("session.save_model_format", "ORT")
    try:
        ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
        os.replace(tmp, dest)
    except Exception as e:
        # the model passed the frontend's checks and our own stages built it: a runtime that
        # refuses it is our bug (or the runtime's), not the user's input
        raise InternalError(f"ONNX Runtime cannot load the model edgeprune built: "
                            f"{str(e).splitlines()[0]}") from None
    finally:
        if tmp.exists():
            tmp.unlink()


# convolutions that ran in float: ONNX, ORT's fused and NCHWc forms
FLOAT_CONV_OPS = {("", "Conv"), ("com.microsoft", "FusedConv"), ("com.microsoft.nchwc", "Conv")}


def runtime_graph(artifact: Artifact) -> onnx.ModelProto:
    """The graph ONNX Runtime actually runs for the artifact on this host: its model loaded
    under the artifact's own configuration, saved after every optimisation."""
    import tempfile

    import onnxruntime as ort

    config = json.loads(artifact.path("config").read_text())
    with tempfile.TemporaryDirectory(prefix="edgeprune-ops-") as tmp:
        so = _session_options(config)
        so.optimized_model_filepath = str(Path(tmp) / "runtime.onnx")
        ort.InferenceSession(str(artifact.path("model")), so, providers=["CPUExecutionProvider"])
        return onnx.load(str(Path(tmp) / "runtime.onnx"))


def op_histogram(graph: onnx.ModelProto) -> dict[str, int]:
    """`domain:op` (no domain for ONNX ops) -> count, sorted by name."""
    counts: dict[str, int] = {}
    for n in graph.graph.node:
        key = f"{n.domain}:{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def float_convs(graph: onnx.ModelProto) -> list[str]:
    """Convolutions the runtime runs in float, as `OpType 'node name'`."""
    return [f"{n.op_type} '{n.name or n.output[0]}'" for n in graph.graph.node
            if ("" if n.domain == "ai.onnx" else n.domain, n.op_type) in FLOAT_CONV_OPS]


def _session_options(config: Mapping[str, Any]):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, config["graph_optimization_level"])
    so.log_severity_level = 3
    for k, v in config["session_config"].items():
        so.add_session_config_entry(k, v)
    if config.get("intra_op_num_threads"):
        so.intra_op_num_threads = int(config["intra_op_num_threads"])
    return so


def load_session(artifact: Artifact, role: str = "model"):
    """An InferenceSession for the artifact on this host, configured as the device would be
    (providers this host lacks are skipped; the CPU EP always remains)."""
    import onnxruntime as ort

    config = json.loads(artifact.path("config").read_text())
    so = _session_options(config)
    available = set(ort.get_available_providers())
    pairs = [(p, o) for p, o in zip(config["providers"], config["provider_options"]) if p in available]
    return ort.InferenceSession(str(artifact.path(role)), so, providers=[p for p, _ in pairs],
                                provider_options=[o for _, o in pairs])


def check_on_host(artifact: Artifact, proto: onnx.ModelProto, atol: float = 1e-4, seed: int = 0) -> dict[str, Any]:
    """Both saved models, run here, against the unoptimised fp32 reference."""
    inputs = random_inputs(artifact.inputs, seed)
    ref = reference_outputs(proto, inputs)
    result: dict[str, Any] = {"seed": seed, "ok": True}
    for role in ("model", "ort_model"):
        sess = load_session(artifact, role)
        outs = dict(zip(artifact.outputs, sess.run(artifact.outputs, inputs)))
        cmp = compare(outs, ref, atol)
        result[role] = cmp.to_json() | {"providers": sess.get_providers()}
        result["ok"] = result["ok"] and cmp.ok
    return result


def run_on_host(artifact: Artifact, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    sess = load_session(artifact)
    return dict(zip(artifact.outputs, sess.run(artifact.outputs, dict(inputs))))
