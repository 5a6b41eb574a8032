"""A device reached without a profile (`adb:SERIAL`, `ssh:USER@HOST`) is read once: its
architecture, CPU features, core clusters, GPU and OS, and a profile that matches it is
written to the user's profiles folder (`adb-SERIAL.toml`, `ssh-USER-HOST.toml`) for later runs
to reuse. Without it an artifact would be built for this host, not for the device.

What is read is plain POSIX sh over the device's shell (busybox or toybox on a phone), so a
device with no Python is read the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from .. import locations
from ..atomic import write_text
from ..errors import DeviceError
from .profile import DeviceSpec, load_profile_file

# one section per source, so a missing tool (no getprop on a board) leaves its section empty
SCRIPT = (
    "echo '==abi'; getprop ro.product.cpu.abi 2>/dev/null; "
    "echo '==model'; getprop ro.product.model 2>/dev/null; "
    "echo '==soc'; getprop ro.soc.model 2>/dev/null; getprop ro.board.platform 2>/dev/null; "
    "echo '==uname'; uname -m 2>/dev/null; "
    "echo '==cpuinfo'; cat /proc/cpuinfo 2>/dev/null; "
    "echo '==freq'; for f in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq; do "
    "[ -r \"$f\" ] && echo \"$f $(cat \"$f\")\"; done; "
    "echo '==gpu'; [ -d /sys/class/kgsl/kgsl-3d0 ] && echo adreno; "
    "[ -e /dev/mali0 ] || [ -d /sys/class/misc/mali0 ] && echo mali; "
    "echo '==end'"
)

_ABI_ARCH = {"arm64-v8a": "aarch64", "armeabi-v7a": "armv7", "x86_64": "x86_64", "x86": "i686"}
_FEATURE_MATTR = {"asimd": "+neon", "asimddp": "+dotprod", "i8mm": "+i8mm", "fphp": "+fullfp16"}


@dataclass
class Detected:
    arch: str
    model: str
    cores: int
    features: set[str] = field(default_factory=set)
    max_khz: dict[int, int] = field(default_factory=dict)   # cpu index -> max frequency
    gpu: str | None = None


def _sections(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("==") and line[2:].strip().isidentifier():
            current = line[2:].strip()
            out[current] = []
        elif current is not None and line.strip():
            out[current].append(line.strip())
    return out


def parse(text: str) -> Detected:
    """What SCRIPT printed -> Detected (DeviceError when the architecture cannot be told)."""
    s = _sections(text)
    if "end" not in s:
        raise DeviceError("the device's shell did not finish reading its CPU (no '==end')")
    abi = (s.get("abi") or [""])[0]
    uname = (s.get("uname") or [""])[0]
    arch = _ABI_ARCH.get(abi) or {"arm64": "aarch64", "armv8l": "armv7"}.get(uname, uname)
    if not arch:
        raise DeviceError("could not tell the device's architecture (no ro.product.cpu.abi, no uname -m)")
    cpuinfo = s.get("cpuinfo", [])
    features: set[str] = set()
    hardware = ""
    processors = 0
    for line in cpuinfo:
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("features", "flags"):
            features |= set(value.split())
        elif key == "processor":
            processors += 1
        elif key in ("hardware", "model name") and not hardware:
            hardware = value.strip()
    max_khz = {}
    for line in s.get("freq", []):
        m = re.search(r"/cpu(\d+)/cpufreq/cpuinfo_max_freq (\d+)$", line)
        if m:
            max_khz[int(m.group(1))] = int(m.group(2))
    model = next((v for v in (s.get("model") or []) if v), "") or hardware or arch
    soc = next((v for v in (s.get("soc") or []) if v), "")
    return Detected(arch=arch, model=f"{model} ({soc})" if soc else model,
                    cores=max(processors, len(max_khz), 1), features=features, max_khz=max_khz,
                    gpu=(s.get("gpu") or [None])[0])


def profile_name(spec: DeviceSpec) -> str:
    address = spec.serial if spec.kind == "adb" else f"{spec.user}-{spec.host}" + (f"-{spec.port}" if spec.port else "")
    return re.sub(r"[^a-z0-9_.-]+", "-", f"{spec.kind}-{address}".lower()).strip("-.")


def _toml_str(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def profile_toml(d: Detected, spec: DeviceSpec) -> str:
    """A profile for what was detected: TVM targets the device's triple and CPU features, the
    runner is pinned to a fastest core, energy is found on the device at run time."""
    lines = [f"# Detected over {spec.kind} from {spec.raw}; edit freely, it is read as any profile.",
             f"name = {_toml_str(profile_name(spec))}",
             f"description = {_toml_str(d.model + ' (detected)')}", "",
             "[reach]", f'kind = "{spec.kind}"', f"address = {_toml_str(spec.raw)}", "",
             "[cpu]", f"arch = {_toml_str(d.arch)}", f"model = {_toml_str(d.model)}", f"cores = {d.cores}"]
    if d.max_khz:
        by_freq: dict[int, int] = {}
        for khz in d.max_khz.values():
            by_freq[khz] = by_freq.get(khz, 0) + 1
        clusters = ", ".join(f'{{ name = "{khz // 1000} MHz cluster", cores = {n}, max_mhz = {khz // 1000} }}'
                             for khz, n in sorted(by_freq.items()))
        lines.append(f"clusters = [{clusters}]")
    if d.gpu:
        name = {"adreno": "Adreno", "mali": "Mali"}.get(d.gpu, d.gpu)
        lines += ["", "[gpu]", f'name = "{name}"', 'api = ["opencl"]']
    lines += ["", "[runtimes.ort]", 'providers = ["CPUExecutionProvider"]']
    if d.arch in ("aarch64", "x86_64"):
        if d.arch == "aarch64":
            # a phone runs artifacts in edgeprune's device bundle, whose TVM runtime is glibc's,
            # so its libraries are glibc ones (linked with aarch64-linux-gnu-gcc); an app that
            # embeds TVM's Android runtime wants mtriple aarch64-linux-android and the NDK
            triple = "aarch64-linux-gnu"
            mattr = sorted({v for f, v in _FEATURE_MATTR.items() if f in d.features} | {"+neon"})
            target_text = f'{{ kind = "llvm", mtriple = "{triple}", mattr = [{", ".join(_toml_str(a) for a in mattr)}] }}'
        else:
            target_text = '{ kind = "llvm", mtriple = "x86_64-linux-gnu" }'
        lines += ["", "[runtimes.tvm]", f"target = {target_text}"]
    fastest = [cpu for cpu, khz in sorted(d.max_khz.items()) if khz == max(d.max_khz.values())] if d.max_khz else []
    lines += ["", "[measure]", 'channel_step = "measure"', "threads = 1"]
    if fastest:
        lines.append(f"cores = [{fastest[-1]}]   # a core of the fastest cluster")
    lines += ["", "[power]", 'kind = "detect"', ""]
    return "\n".join(lines)


def with_profile(spec: DeviceSpec, link=None) -> DeviceSpec:
    """`spec` with a profile: its own, the one detected earlier (user profiles folder), or one
    detected now over `link` (opened from the spec when not given) and saved."""
    if spec.profile is not None or spec.kind not in ("adb", "ssh"):
        return spec
    path = locations.user_profiles_dir() / f"{profile_name(spec)}.toml"
    if not path.is_file():
        if link is None:
            link = _link(spec)
        out = link.shell(SCRIPT, timeout=60.0)
        text = profile_toml(parse(out.stdout.decode(errors="replace")), spec)
        write_text(path, text)
    return replace(spec, profile=load_profile_file(path))


def _link(spec: DeviceSpec):
    if spec.kind == "adb":
        from .adb import AdbLink

        return AdbLink(spec.serial)
    from .remote import device_setting
    from .ssh import SshLink

    return SshLink(spec.user, spec.host, int(spec.port or 22),
                   key=device_setting(None, "ssh_key", env="EDGEPRUNE_SSH_KEY"),
                   known_hosts=device_setting(None, "known_hosts", env="EDGEPRUNE_SSH_KNOWN_HOSTS"))
