"""What built an artifact: the versions of edgeprune and of the libraries that shape its
bytes and timings, and the runtime configuration its LUT was measured in. `edgeprune
--version` prints the versions; the manifest records both (`provenance`), so a CI job can
pin them and compare two artifacts.

Versions come from the installed distributions' metadata: nothing heavy (TVM, torch) is
imported to find them.
"""

from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata, util
from typing import Any

# distribution name -> import name; None version = not installed (or not importable)
LIBRARIES = {"onnx": "onnx", "onnxruntime": "onnxruntime", "apache-tvm": "tvm", "torch": "torch",
             "numpy": "numpy"}


def _dist_version(dist: str, module: str) -> str | None:
    if util.find_spec(module) is None:
        return None
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        try:  # installed some other way (a source build): ask the module itself
            return str(getattr(__import__(module), "__version__", None) or "") or None
        except Exception:  # noqa: BLE001  a broken optional library is "not importable"
            return None


def versions() -> dict[str, str | None]:
    from .version import __version__

    out: dict[str, str | None] = {"edgeprune": __version__}
    for dist, module in LIBRARIES.items():
        out["tvm" if dist == "apache-tvm" else dist] = _dist_version(dist, module)
    out["python"] = platform.python_version()
    return out


def version_line() -> str:
    v = versions()
    libs = ", ".join(f"{k} {v[k]}" for k in v if k != "edgeprune" and v[k] is not None)
    return f"edgeprune {v['edgeprune']} ({libs})"


def config_key(key: dict[str, Any] | None) -> str | None:
    """A short, stable digest of a runtime configuration key (the tag LUT file names carry)."""
    if key is None:
        return None
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]


def provenance(runtime=None, lut=None) -> dict[str, Any]:
    """The manifest's `provenance`: library versions, the runtime configuration the artifact
    runs in, and the LUT's own configuration (recorded in its header when it was measured)."""
    out: dict[str, Any] = {"versions": versions()}
    if runtime is not None:
        out["runtime"] = {"key": runtime.key(), "tag": config_key(runtime.key())}
    if lut is not None:
        header = getattr(lut, "header", {}) or {}
        out["lut"] = {"runtime": header.get("runtime"), "tag": config_key(header.get("runtime")),
                      **{k: header[k] for k in ("device", "backend", "cpu", "fingerprint", "threads",
                                                "clock", "channel_step") if k in header}}
    return out
