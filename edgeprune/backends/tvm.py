"""TVM (Relax) backend: ONNX → Relax → a library for the device's CPU or GPU.

CPU targets: tuned with MetaSchedule when the target is this host and a trial budget is
given (records persist per target and are applied on every compile, so a budget of 0 still
uses what earlier runs tuned); the rest of the functions keep TVM's default lowering.
GPU targets (OpenCL for Adreno and Mali): TVM's GPU schedules (dlight; Adreno's convolution
rules), no tuning; the generated kernels are written beside the library.
The library is linked with a compiler for the device when one is here, else exported as a
.tar of objects; the artifact says which.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import onnx

from ..atomic import write_text
from ..errors import InternalError, UsageError, first_line
from .base import Artifact, TargetSpec, as_proto, io_spec
from .tvm_target import Linker, is_gpu, linker_for, target_dict, triple_of
from .verify import compare, random_inputs, reference_outputs

LIBRARY_STEM = "model"
KERNELS_FILE = "kernels.cl"

_OPTIONS = {"tuning_trials", "tuning_trials_per_task", "tuning_strategy", "tuning_cache", "tuning_rpc", "int8",
            "check", "atol"}


class TvmBackend:
    name = "tvm"

    def compile(self, model, target: TargetSpec, outdir, options: Mapping[str, Any] | None = None) -> Artifact:
        import tvm

        options = dict(options or {})
        unknown = set(options) - _OPTIONS
        if unknown:
            raise UsageError(f"tvm backend: unknown options {sorted(unknown)} (known: {sorted(_OPTIONS)})")
        proto = as_proto(model)
        inputs, outputs = io_spec(proto)
        tdict = target_dict(target.tvm, int8=bool(options.get("int8")))
        if tdict.get("kind") == "llvm":
            # MetaSchedule sizes parallel loops by it: the threads the artifact runs with there
            tdict.setdefault("num-cores", max(1, int(target.threads or 1)))
        try:
            tgt = tvm.target.Target(tdict)
        except Exception as e:
            raise UsageError(f"target {target.name}: TVM rejects target {tdict}: {first_line(e)}") from None
        outdir = Path(outdir)
        outdir.mkdir(parents=True, exist_ok=True)

        started = time.monotonic()
        mod = import_onnx(simplify(proto))
        if any(n.op_type == "DequantizeLinear" for n in proto.graph.node):
            from ..quantize.tvm_int8 import lower_qdq  # QDQ → int8 conv/matmul kernels

            mod = lower_qdq(mod)
        notes: dict[str, Any] = {"tvm_version": tvm.__version__}
        if is_gpu(tdict):
            notes["schedules"] = "dlight (TVM's GPU default schedules)"
        else:
            mod, notes["tuning"] = _tune_cpu(mod, tgt, triple_of(tdict) is None, options)
        try:
            executable = tvm.compile(mod, target=tgt)
        except Exception as e:
            raise InternalError(f"target {target.name}: TVM cannot compile the model for {tdict.get('kind')}: "
                             f"{first_line(e)}") from None
        notes["compile_seconds"] = round(time.monotonic() - started, 2)

        linker = linker_for(triple_of(tdict))
        library = f"{LIBRARY_STEM}.{linker.format}"
        _export(executable, outdir / library, linker)
        files = {"model": library}
        notes["export"] = linker.to_json()

        kernels = device_sources(executable.mod, "opencl")
        if kernels:
            write_text(outdir / KERNELS_FILE, kernels)
            files["kernels"] = KERNELS_FILE

        device = "opencl" if tdict["kind"] == "opencl" else "cpu"
        artifact = Artifact(
            backend=self.name, root=outdir, files=files,
            target={"device": target.name, "triple": triple_of(tdict), "tvm": tdict},
            run={"backend": "tvm", "model": library,
                 "options": {"device": device, "inputs": _input_list(inputs), "outputs": outputs}},
            inputs=inputs, outputs=outputs, notes=notes)
        if options.get("check", True) and triple_of(tdict) is None and device == "cpu":
            artifact.notes["host_check"] = check_on_host(artifact, proto, atol=float(options.get("atol", 1e-4)))
            if not artifact.notes["host_check"]["ok"]:
                raise RuntimeError(f"tvm backend: library differs from the reference: {artifact.notes['host_check']}")
        artifact.save()
        return artifact


def simplify(proto: onnx.ModelProto) -> onnx.ModelProto:
    """ONNX Runtime's basic graph optimisations (constant folding, BatchNorm and bias folded
    into Conv, redundant nodes removed): standard ONNX ops only, and far fewer of them for
    TVM to import, constant-fold (each fold compiles a kernel) and fuse."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="edgeprune-tvm-") as tmp:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        so.optimized_model_filepath = os.path.join(tmp, "basic.onnx")
        so.log_severity_level = 3
        try:
            ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise InternalError(f"ONNX Runtime cannot load the model edgeprune built: {first_line(e)}") from None
        return onnx.load(so.optimized_model_filepath)


def import_onnx(proto: onnx.ModelProto):
    from tvm.relax.frontend import onnx as relax_onnx  # must be imported explicitly

    try:
        return relax_onnx.from_onnx(proto, keep_params_in_input=False)
    except Exception as e:
        raise InternalError(f"TVM's ONNX importer rejects the model edgeprune built: {first_line(e)}") from None


def _tune_cpu(mod, tgt, is_host: bool, options: Mapping[str, Any]):
    """Fuse, tune what the database lacks (only where candidates can be timed: on this host,
    or on the device behind a TVM RPC tracker, `tuning_rpc` = HOST:PORT/KEY), and apply every
    record the target's database holds."""
    from . import tvm_tuning

    cache = Path(options["tuning_cache"]) if options.get("tuning_cache") else None
    trials = int(options.get("tuning_trials", 0))
    rpc = None if is_host or not options.get("tuning_rpc") else tvm_tuning.RpcTracker.parse(options["tuning_rpc"])
    linker = linker_for(str(tgt.attrs.get("mtriple", "")) or None) if rpc else None
    skipped = None
    if trials > 0 and not is_host:
        if rpc is None:
            skipped = "candidates can only be timed on the device: compile for an rpc: target to tune there"
        elif linker.fcompile is None or linker.format != "so":
            skipped = f"candidates cannot be linked for the device here ({linker.reason})"
            rpc = None
    can_tune = is_host or rpc is not None
    note: dict[str, Any] = {"trials": 0, "database": str(tvm_tuning.database_dir(tgt, cache))}
    if not (trials > 0 and can_tune) and not tvm_tuning.has_records(tgt, cache):
        note["untuned"] = "no tuning records for this target: TVM's default (slow) CPU lowering"
        if skipped:
            note["skipped"] = skipped
        return mod, note
    mod = tvm_tuning.prepare(mod, tgt)
    config = tvm_tuning.TuningConfig(max_trials=trials if can_tune else 0,
                                     max_trials_per_task=options.get("tuning_trials_per_task"),
                                     strategy=options.get("tuning_strategy", "evolutionary"),
                                     cache_dir=cache, rpc=rpc, fcompile=linker.fcompile if rpc else None)
    note = tvm_tuning.tune(mod, tgt, config).to_json()  # with 0 trials: what the database covers
    if rpc is not None:
        note["timed_on"] = f"rpc:{rpc.host}:{rpc.port}/{rpc.key}"
    if skipped:
        note["skipped"] = skipped
    return tvm_tuning.apply_database(mod, tgt, cache), note


def _export(executable, path: Path, linker: Linker) -> None:
    from ..atomic import replacing

    try:
        with replacing(path, suffix=f".{linker.format}") as tmp:
            if linker.fcompile is None:
                executable.export_library(str(tmp))
            else:
                executable.export_library(str(tmp), fcompile=linker.fcompile)
    except Exception as e:
        raise RuntimeError(f"export_library with {linker.compiler or 'tar'} failed: {first_line(e)}") from e


def device_sources(module, kind: str) -> str:
    """The generated source of every `kind` module the library imports (e.g. the OpenCL kernels)."""
    seen, parts, stack = set(), [], [module]
    while stack:
        m = stack.pop()
        if id(m) in seen:
            continue
        seen.add(id(m))
        if getattr(m, "kind", None) == kind:
            parts.append(m.inspect_source())
        stack.extend(m.imports)
    return "\n".join(parts)


def _input_list(inputs: Mapping[str, Mapping[str, Any]]) -> list[list[Any]]:
    return [[name, list(spec["shape"]), spec["dtype"]] for name, spec in inputs.items()]


def load_library(artifact: Artifact):
    """A Relax VM over the artifact's library, on this host's CPU."""
    import tvm
    from tvm import relax

    lib = tvm.runtime.load_module(str(artifact.path("model")))
    return relax.VirtualMachine(lib, tvm.cpu())


def run_on_host(artifact: Artifact, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    import tvm

    vm = load_library(artifact)
    out = vm["main"](*[tvm.runtime.tensor(np.ascontiguousarray(inputs[n])) for n in artifact.inputs])
    outs = list(out) if not hasattr(out, "numpy") else [out]
    return {name: o.numpy() for name, o in zip(artifact.outputs, outs)}


def check_on_host(artifact: Artifact, proto: onnx.ModelProto, atol: float = 1e-4, seed: int = 0) -> dict[str, Any]:
    inputs = random_inputs(artifact.inputs, seed)
    cmp = compare(run_on_host(artifact, inputs), reference_outputs(proto, inputs), atol)
    return {"seed": seed} | cmp.to_json()



