"""The runtime configuration: how a model runs on a target, decided once from the target.

A LUT entry, the dense reference and the shipped artifact are all timed under one
`RuntimeConfig`, and the artifact's own config file says the same thing, so what is priced is
what ships. Its `key()` goes into the LUT header: a LUT measured under another configuration
does not answer for this one.

ONNX Runtime runs at `ORT_ENABLE_ALL` on every target (ONNX Runtime's own default): on x86 it
turns fp32 convolutions into NCHWc kernels (about 2.5x faster than `extended` on
EfficientNet-Lite0 here), on ARM it adds the NHWC int8 kernels. Layout optimisations happen
when the session loads the model, on the device's own CPU, so the model file we ship stays a
portable offline-optimised (`extended`) ONNX graph; an ORT-format file does not get them at
load time (measured: model.ort loaded at `all` ran as slowly as at `extended`), which is why
the artifact runs the ONNX file and names the ORT file for minimal builds only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..errors import UsageError

DTYPES = ("fp32", "int8")
# short names, as runtimes/backend_ort.py takes them
ORT_LEVELS = ("disable", "basic", "extended", "all")
ORT_DEFAULT_LEVEL = "all"
# Providers that take whole subgraphs away from the CPU EP.
ACCELERATOR_EPS = {"XnnpackExecutionProvider", "NnapiExecutionProvider", "QNNExecutionProvider",
                   "CoreMLExecutionProvider", "TensorrtExecutionProvider", "CUDAExecutionProvider"}
_KNOWN_EPS = ACCELERATOR_EPS | {"CPUExecutionProvider"}


@dataclass(frozen=True)
class RuntimeConfig:
    backend: str                              # "ort" | "tvm"
    providers: tuple[str, ...] = ()           # ORT execution providers, in order
    optimization: str = ORT_DEFAULT_LEVEL     # ORT graph optimisation level at session load
    threads: int = 1                          # intra-op threads
    session_config: tuple[tuple[str, str], ...] = ()   # ORT session config entries

    def key(self) -> dict[str, Any]:
        """What a LUT header records; two configs time alike only if their keys are equal."""
        d = asdict(self)
        d["providers"] = list(self.providers)
        d["session_config"] = dict(self.session_config)
        return d

    def runner_options(self) -> dict[str, Any]:
        """The options `runtimes/runner.py` passes to its backend's `load`."""
        if self.backend != "ort":
            return {}
        return {"providers": list(self.providers), "graph_optimization_level": self.optimization,
                "session_config": dict(self.session_config)}

    def describe(self) -> str:
        if self.backend != "ort":
            return f"{self.backend}, {self.threads} thread(s)"
        return (f"ort {self.optimization}, {'+'.join(p.replace('ExecutionProvider', '') for p in self.providers)}, "
                f"{self.threads} thread(s)")


def ort_session_config(is_host: bool) -> tuple[tuple[str, str], ...]:
    # As convert_onnx_models_to_ort does: ARM has s8s8 kernels, so keep int8 QDQ; x86 prefers
    # u8s8, so let the optimiser rewrite int8 activations to uint8.
    return (("session.qdqisint8allowed", "0" if is_host else "1"),)


def runtime_config(target, backend: str) -> RuntimeConfig:
    """The configuration `backend` artifacts run under on `target` (a backends.base.TargetSpec)."""
    threads = int(target.threads) if target.threads else 1
    if backend != "ort":
        return RuntimeConfig(backend=backend, threads=threads, optimization="n/a")
    return RuntimeConfig(backend="ort", providers=providers_for(target), optimization=ORT_DEFAULT_LEVEL,
                         threads=threads, session_config=ort_session_config(target.is_host))


def providers_for(target) -> tuple[str, ...]:
    unknown = [p for p in target.ort_providers if p not in _KNOWN_EPS]
    if unknown:
        raise UsageError(f"target {target.name}: unknown ONNX Runtime execution providers {unknown} "
                         f"(known: {sorted(_KNOWN_EPS)})")
    providers = tuple(target.ort_providers) or ("CPUExecutionProvider",)
    # the CPU EP is the fallback for every node another provider declines
    if "CPUExecutionProvider" not in providers:
        providers += ("CPUExecutionProvider",)
    return providers


def key_mismatch(recorded: dict[str, Any] | None, wanted: RuntimeConfig) -> str | None:
    """Why a LUT recorded under `recorded` cannot price `wanted`, or None when it can."""
    want = wanted.key()
    if recorded is None:
        return f"it records no runtime configuration (measured before configurations were keyed); " \
               f"this target runs {wanted.describe()}"
    diff = [f"{k} {recorded.get(k)!r} vs {want[k]!r}" for k in want if recorded.get(k) != want[k]]
    return f"it was measured under another runtime configuration ({'; '.join(diff)})" if diff else None
