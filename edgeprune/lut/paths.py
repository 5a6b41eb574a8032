"""Where a device's LUT lives by default: profiles/luts/<device>-<backend>[-<cpu>].json.

A host LUT belongs to the CPU it was measured on, so the host key includes the CPU
fingerprint; a remote device's key is its profile name or its address. Every name ends in a
tag of the runtime configuration (backends/runtime.py): a target that runs another
configuration gets its own LUT, measured on demand, never one timed another way.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from ..devices.profile import PROFILES_DIR, DeviceSpec

LUTS_DIR = PROFILES_DIR / "luts"


def default_lut_path(spec: DeviceSpec, backend: str, folder: Path = LUTS_DIR) -> Path:
    tag = runtime_tag(spec, backend)
    if spec.kind == "local":
        from ..devices.host import cpu_fingerprint
        name = spec.profile.name if spec.profile else "host"
        return Path(folder) / f"{name}-{backend}-{cpu_fingerprint()}-{tag}.json"
    name = spec.profile.name if spec.profile is not None else re.sub(r"[^A-Za-z0-9_.-]+", "_", spec.raw)
    return Path(folder) / f"{name}-{backend}-{tag}.json"


def runtime_tag(spec: DeviceSpec, backend: str) -> str:
    from .session import spec_runtime

    key = spec_runtime(spec, backend).key()
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]
