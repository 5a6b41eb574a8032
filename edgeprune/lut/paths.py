"""Where a device's LUT lives by default: <cache>/luts/<device>-<backend>[-<cpu>]-<tag>.json.

The cache is the user's (locations.py: `$EDGEPRUNE_CACHE_DIR`, default
`~/.cache/edgeprune`); a LUT of that name shipped with the package (`profiles/luts/`) is
copied there the first time it is looked up, and grows there, never in the package.

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

from .. import locations
from ..devices.profile import DeviceSpec


def default_lut_name(spec: DeviceSpec, backend: str) -> str:
    tag = runtime_tag(spec, backend)
    if spec.kind == "local":
        from ..devices.host import cpu_fingerprint
        name = spec.profile.name if spec.profile else "host"
        return f"{name}-{backend}-{cpu_fingerprint()}-{tag}.json"
    name = spec.profile.name if spec.profile is not None else re.sub(r"[^A-Za-z0-9_.-]+", "_", spec.raw)
    return f"{name}-{backend}-{tag}.json"


def default_lut_path(spec: DeviceSpec, backend: str, folder: Path | None = None) -> Path:
    """The device's LUT file: in `folder` if given, else in the user cache (seeded from a
    LUT of the same name shipped with the package, if any)."""
    name = default_lut_name(spec, backend)
    if folder is not None:
        return Path(folder) / name
    return locations.lut_file(name)


def spec_runtime(spec: DeviceSpec, backend: str):
    """The runtime configuration (backends.runtime.RuntimeConfig) artifacts for `spec` run
    under: the one its LUT entries are measured under and its file name carries."""
    from ..backends.base import TargetSpec
    from ..backends.runtime import runtime_config
    from ..devices.profile import load_profile

    return runtime_config(TargetSpec.from_profile(spec.profile if spec.profile is not None
                                                  else load_profile("host")), backend)


def runtime_tag(spec: DeviceSpec, backend: str) -> str:
    key = spec_runtime(spec, backend).key()
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]
