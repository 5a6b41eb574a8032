"""Backends: an ONNX model → an artifact for one device (see base.py).

    get("ort" | "tvm") -> a Backend;  names() -> the known names

Backends are imported on first use: TVM alone takes seconds to import.
"""

from __future__ import annotations

import importlib

from ..errors import UsageError
from .base import Artifact, Backend, TargetSpec

_BACKENDS = {"ort": ("edgeprune.backends.ort", "OrtBackend"),
             "tvm": ("edgeprune.backends.tvm", "TvmBackend")}


def names() -> list[str]:
    return list(_BACKENDS)


def get(name: str) -> Backend:
    try:
        module, cls = _BACKENDS[name]
    except KeyError:
        raise UsageError(f"--backend {name}: unknown backend (known: {', '.join(_BACKENDS)})") from None
    return getattr(importlib.import_module(module), cls)()


__all__ = ["Artifact", "Backend", "TargetSpec", "get", "names"]
