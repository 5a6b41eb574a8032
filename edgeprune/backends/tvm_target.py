"""Device profile → TVM target, and how to link a library for it.

Targets stay JSON dicts until the last moment (that is how profiles write them). The host
gets `-mcpu` of this CPU: without it LLVM emits baseline SSE2 code. aarch64 CPUs get NEON,
plus dotprod when the model is int8. OpenCL targets (Adreno, Mali) run their host code on
the phone's CPU, aarch64 Android unless the profile says otherwise.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import UsageError

ANDROID_HOST = {"kind": "llvm", "mtriple": "aarch64-linux-android", "mattr": ["+neon"]}
ANDROID_API = 28


def target_dict(tvm_target: Mapping[str, Any] | None, host: Mapping[str, Any] | None = None,
                *, int8: bool = False) -> dict[str, Any]:
    """The full target dict for a profile's `[runtimes.tvm]` (target, optional host)."""
    d = dict(tvm_target or {"kind": "llvm"})
    kind = d.get("kind")
    if kind == "llvm":
        if not d.get("mtriple"):
            if "mcpu" not in d:
                d["mcpu"] = _host_cpu()
                d["mattr"] = _with(d.get("mattr", []), *_masked_features(d["mcpu"]))
            d.setdefault("num-cores", os.cpu_count() or 1)
        elif d["mtriple"].startswith("aarch64"):
            d["mattr"] = _with(d.get("mattr", []), "+neon", "+dotprod" if int8 else None)
    elif kind == "opencl":
        h = dict(host or d.get("host") or ANDROID_HOST)
        if h.get("mtriple", "").startswith("aarch64"):
            h["mattr"] = _with(h.get("mattr", []), "+neon", "+dotprod" if int8 else None)
        d["host"] = h
    elif kind is None:
        raise UsageError(f"TVM target {dict(tvm_target or {})} has no 'kind'")
    return d


def triple_of(target: Mapping[str, Any]) -> str | None:
    """The LLVM triple of the code that runs on the device's CPU; None for this host."""
    host = target.get("host") if isinstance(target.get("host"), Mapping) else target
    return host.get("mtriple") or None


def device_triple(target: Mapping[str, Any]) -> str | None:
    """`triple_of` for a profile's target as written (an OpenCL target without a host runs
    its host code on Android), without importing TVM."""
    if target.get("kind") == "opencl" and not isinstance(target.get("host"), Mapping):
        return ANDROID_HOST["mtriple"]
    return triple_of(target)


def is_gpu(target: Mapping[str, Any]) -> bool:
    return target.get("kind") in ("opencl", "vulkan", "cuda", "metal", "rocm")


@dataclass(frozen=True)
class Linker:
    """How export_library links: `fcompile` None means the host's default compiler."""

    format: str                   # "so" or "tar"
    compiler: str | None          # what linked it, for the manifest
    fcompile: Callable | None
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"format": self.format, "compiler": self.compiler, "reason": self.reason}


def linker_for(triple: str | None) -> Linker:
    """A shared library when a compiler for the triple exists here, else a .tar of object
    files (the device, or whoever deploys, links it)."""
    from tvm.support import cc, tar

    if triple is None:
        return Linker("so", os.environ.get("CXX", "g++"), None)
    if "android" in triple:
        clang = _ndk_clang(triple)
        if clang:
            return Linker("so", str(clang), cc.cross_compiler(str(clang), options=["-static-libstdc++"]))
        return Linker("tar", None, tar.tar, "ANDROID_NDK_HOME is not set (or has no clang for "
                      f"{triple}): object files in a .tar, link with the NDK's clang")
    if triple.startswith("aarch64") and "linux" in triple:
        gcc = shutil.which("aarch64-linux-gnu-gcc")
        if gcc:
            return Linker("so", gcc, cc.cross_compiler(gcc))
        return Linker("tar", None, tar.tar, "aarch64-linux-gnu-gcc not found (Debian gcc-aarch64-linux-gnu): "
                      "object files in a .tar")
    return Linker("tar", None, tar.tar, f"no cross compiler known for {triple}: object files in a .tar")


def _ndk_clang(triple: str) -> Path | None:
    ndk = os.environ.get("ANDROID_NDK_HOME")
    if not ndk:
        return None
    arch = triple.split("-")[0]
    bins = Path(ndk) / "toolchains" / "llvm" / "prebuilt" / "linux-x86_64" / "bin"
    candidates = sorted(bins.glob(f"{arch}-linux-android*-clang"),
                        key=lambda p: int("".join(c for c in p.name.split("android")[1] if c.isdigit()) or 0))
    preferred = bins / f"{arch}-linux-android{ANDROID_API}-clang"
    if preferred.exists():
        return preferred
    return candidates[-1] if candidates else None


def _host_cpu() -> str:
    import tvm

    return tvm.target.codegen.llvm_get_system_cpu()


# LLVM feature names of vector extensions, and how /proc/cpuinfo spells each one
_VECTOR_FEATURES = {
    "avx": "avx", "avx2": "avx2", "fma": "fma", "f16c": "f16c", "avxvnni": "avx_vnni",
    "avx512f": "avx512f", "avx512bw": "avx512bw", "avx512cd": "avx512cd", "avx512dq": "avx512dq",
    "avx512vl": "avx512vl", "avx512vnni": "avx512_vnni", "avx512bf16": "avx512_bf16",
    "avx512vbmi": "avx512vbmi", "avx512vbmi2": "avx512_vbmi2", "avx512ifma": "avx512ifma",
    "avx512bitalg": "avx512_bitalg", "avx512vpopcntdq": "avx512_vpopcntdq",
    "avx512fp16": "avx512_fp16", "gfni": "gfni", "vaes": "vaes", "vpclmulqdq": "vpclmulqdq",
    "amx-tile": "amx_tile", "amx-int8": "amx_int8", "amx-bf16": "amx_bf16",
}


def _masked_features(mcpu: str) -> list[str]:
    """`-feature` for each vector extension the CPU model implies but this machine hides.
    A hypervisor may report a Zen 4 with AVX-512 masked off: LLVM names it `znver4` and
    would emit AVX-512 code that dies with SIGILL (seen on these machines)."""
    import tvm

    try:
        flags = set(Path("/proc/cpuinfo").read_text().split("flags", 1)[1].split("\n", 1)[0].split())
        implied = tvm.target.codegen.llvm_get_cpu_features(tvm.target.Target({"kind": "llvm", "mcpu": mcpu}))
    except (OSError, IndexError, AttributeError):
        return []
    return [f"-{f}" for f in sorted(set(implied) & set(_VECTOR_FEATURES)) if _VECTOR_FEATURES[f] not in flags]


def _with(attrs, *extra) -> list[str]:
    out = list(attrs)
    for a in extra:
        if a and a not in out:
            out.append(a)
    return out
