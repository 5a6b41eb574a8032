"""The Backend protocol and the typed records that cross it.

A backend turns an ONNX model into an *artifact* for one target: the files a device needs,
what they were built for, and how `runtimes/runner.py` runs them (the runner backend name
and its options). The artifact's `<backend>.artifact.json` says all of that beside the files, so a
device, `verify` or a human can run it without importing the code that built it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol, runtime_checkable

import onnx

from ..atomic import write_text
from ..errors import UsageError
from ..frontend.shapes import dims_text, static_shape



def artifact_file(backend: str) -> str:
    """The description beside the files; per backend, so ORT and TVM artifacts can share a folder."""
    return f"{backend}.artifact.json"


@dataclass(frozen=True)
class TargetSpec:
    """What a backend needs to know about a device.

    `tvm` is a TVM target as a JSON dict (`{"kind": "llvm", "mtriple": ..., "mattr": [...]}`,
    or kind `opencl` with an llvm `host`); `ort` names the execution providers the device
    should use, in order of preference (`["XnnpackExecutionProvider", "CPUExecutionProvider"]`)
    with their options. `triple` is the device's LLVM triple, None for this host.
    """

    name: str = "host"
    triple: str | None = None
    tvm: Mapping[str, Any] | None = None
    ort_providers: tuple[str, ...] = ("CPUExecutionProvider",)
    ort_provider_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    threads: int = 0  # intra-op threads on the device; 0 = runtime default

    def __post_init__(self):
        if self.triple is None and self.tvm is not None:
            from .tvm_target import device_triple

            object.__setattr__(self, "triple", device_triple(self.tvm))

    @property
    def is_host(self) -> bool:
        return self.triple is None

    @staticmethod
    def from_profile(profile: Any) -> "TargetSpec":
        """From a device profile (edgeprune.devices.profile.DeviceProfile): its ORT providers,
        its `[runtimes.tvm]` target (and host), its measuring threads."""
        tvm_table = profile.runtimes.get("tvm")
        tvm_target = None
        if tvm_table:
            tvm_target = dict(tvm_table["target"])
            if tvm_table.get("host"):
                tvm_target["host"] = dict(tvm_table["host"])
        return TargetSpec(name=profile.name, tvm=tvm_target,
                          ort_providers=tuple(profile.providers()),
                          threads=profile.threads)


@dataclass
class Artifact:
    """A compiled model: `files` maps a role ("model", "ort_model", "library", ...) to a
    file name relative to `root`; `run` is what a runner task needs (`backend`, `model`,
    `options`); `target` records what it was built for; `notes` how (e.g. which compiler
    linked the library, or that it is a .tar because none was available)."""

    backend: str
    root: Path
    files: dict[str, str]
    target: dict[str, Any]
    run: dict[str, Any]
    inputs: dict[str, dict[str, Any]]   # name -> {"shape": [...], "dtype": "float32"}
    outputs: list[str]
    notes: dict[str, Any] = field(default_factory=dict)

    def path(self, role: str) -> Path:
        return self.root / self.files[role]

    @property
    def runnable_on_host(self) -> bool:
        return self.target.get("triple") is None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["root"] = None  # relocatable: paths are relative to the artifact's folder
        return d

    def save(self) -> Path:
        path = self.root / artifact_file(self.backend)
        write_text(path, json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n")
        return path

    @staticmethod
    def load(root: str | os.PathLike, backend: str) -> "Artifact":
        root = Path(root)
        path = root / artifact_file(backend)
        if not path.is_file():
            raise UsageError(f"{root}: no {path.name}; not a compiled {backend} artifact")
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise UsageError(f"{path}: invalid JSON ({e.msg} at line {e.lineno})") from None
        d["root"] = root
        return Artifact(**d)


@runtime_checkable
class Backend(Protocol):
    name: str

    def compile(self, model: onnx.ModelProto | str | os.PathLike, target: TargetSpec,
                outdir: str | os.PathLike, options: Mapping[str, Any] | None = None) -> Artifact:
        """Build the artifact for `target` into `outdir` (created if needed) and return it.
        Raises UsageError for a model or target this backend cannot handle."""
        ...


def as_proto(model: onnx.ModelProto | str | os.PathLike | Any) -> onnx.ModelProto:
    """Accept a ModelProto, an edgeprune Model (anything with `.proto`) or a path."""
    if isinstance(model, onnx.ModelProto):
        return model
    if hasattr(model, "proto") and isinstance(model.proto, onnx.ModelProto):
        return model.proto
    from ..frontend.load import load_model
    return load_model(model).proto


def io_spec(proto: onnx.ModelProto) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Static input specs and output names, in graph order (the order positional runtimes use)."""
    inits = {t.name for t in proto.graph.initializer}
    inputs = {}
    for i in proto.graph.input:
        if i.name in inits:
            continue
        tt = i.type.tensor_type
        dims = static_shape(i)   # dim_param, dim_value <= 0 and unset dims are all dynamic
        if dims is None:
            raise UsageError(f"model input '{i.name}' has dynamic shape {dims_text(tt.shape.dim)}; backends "
                             "need static shapes (load it with edgeprune.frontend.load.load_model and --input-shape)")
        inputs[i.name] = {"shape": list(dims),
                          "dtype": onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name}
    return inputs, [o.name for o in proto.graph.output]


