"""Device profiles (*.toml) and DEVICE spec parsing.

A profile name is looked up in the user's profiles folder first
(`$EDGEPRUNE_CONFIG_DIR/profiles`, default `~/.config/edgeprune/profiles`), then among the
profiles packaged with edgeprune (locations.py).

DEVICE (INTERFACE.md) is a profile name, a path to a profile file, `adb:SERIAL`,
`ssh:USER@HOST[:PORT]` or `rpc:HOST:PORT/KEY`. `parse_device` turns it into a `DeviceSpec`;
the parts of a remote spec are kept verbatim (a serial with shell metacharacters stays a
plain string: the devices that use it pass argument lists, never shell strings).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema

from .. import locations
from ..errors import UsageError

# the packaged profiles (read-only); names are looked up in locations.profile_dirs()
PROFILES_DIR = locations.profiles_dir()
REACH_KINDS = ("local", "adb", "ssh", "rpc")

_CLUSTER = {
    "type": "object", "required": ["name", "cores"],
    "properties": {"name": {"type": "string"}, "cores": {"type": "integer", "minimum": 1},
                   "max_mhz": {"type": "number", "exclusiveMinimum": 0}},
    "additionalProperties": False,
}
PROFILE_SCHEMA = {
    "type": "object",
    "required": ["name", "description", "reach", "cpu", "runtimes"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_.-]*$"},
        "description": {"type": "string"},
        "reach": {
            "type": "object", "required": ["kind"], "additionalProperties": False,
            "properties": {
                "kind": {"enum": list(REACH_KINDS)}, "address": {"type": "string"},
                # how adb/ssh devices run the runner (devices/remote.py device_setting)
                "python": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                "bundle": {"type": "string"}, "workdir": {"type": "string"},
                "ssh_key": {"type": "string"}, "known_hosts": {"type": "string"},
            },
        },
        "cpu": {
            "type": "object", "required": ["arch", "cores"], "additionalProperties": False,
            "properties": {"arch": {"type": "string"}, "model": {"type": "string"},
                           "cores": {"anyOf": [{"type": "integer", "minimum": 1}, {"const": "live"}]},
                           "clusters": {"type": "array", "items": _CLUSTER}},
        },
        "gpu": {"type": "object", "required": ["name"], "additionalProperties": False,
                "properties": {"name": {"type": "string"}, "api": {"type": "array", "items": {"type": "string"}}}},
        "runtimes": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "ort": {"type": "object", "required": ["providers"], "additionalProperties": False,
                        "properties": {"providers": {"type": "array", "items": {"type": "string"}, "minItems": 1}}},
                "tvm": {"type": "object", "required": ["target"], "additionalProperties": False,
                        "properties": {"target": {"type": "object", "required": ["kind"]},
                                       "host": {"type": "object", "required": ["kind"]}}},
            },
        },
        "measure": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "channel_step": {"anyOf": [{"type": "integer", "minimum": 1}, {"const": "measure"}]},
                "channel_step_source": {"type": "string"},
                "threads": {"type": "integer", "minimum": 0},
                "clock": {"enum": ["wall", "cpu"]},
                "warmup": {"type": "integer", "minimum": 0},
                "repeats": {"type": "integer", "minimum": 1},
                "min_seconds": {"type": "number", "minimum": 0},
                "passes": {"type": "integer", "minimum": 1},
                "precision": {"type": "number", "minimum": 0, "maximum": 0.5},
                "max_seconds": {"type": "number", "exclusiveMinimum": 0},
                "reference": {"type": "boolean"},
                "tvm_trials": {"type": "integer", "minimum": 0},
                "cores": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            },
        },
        "power": {
            "type": "object", "required": ["kind"], "additionalProperties": False,
            "properties": {"kind": {"enum": ["rapl", "battery", "hwmon", "detect", "none"]},
                           "path": {"type": "string"}},
        },
        "roofline": {
            "type": "object", "required": ["peak_gflops_fp32", "mem_bandwidth_gbs", "source"],
            "additionalProperties": False,
            "properties": {"peak_gflops_fp32": {"type": "number", "exclusiveMinimum": 0},
                           "peak_gops_int8": {"type": "number", "exclusiveMinimum": 0},
                           "mem_bandwidth_gbs": {"type": "number", "exclusiveMinimum": 0},
                           "applies_to": {"type": "string"},
                           "source": {"type": "string"}},
        },
        "lut": {"type": "object", "additionalProperties": False,
                "properties": {"measured": {"type": "boolean"}, "note": {"type": "string"}}},
    },
}


@dataclass
class DeviceProfile:
    name: str
    description: str
    reach: str                    # local | adb | ssh | rpc
    address: str | None           # a default DEVICE spec for remote profiles
    cpu: dict
    gpu: dict | None
    runtimes: dict
    channel_step: int | str       # an int, or "measure" (found by `profile` on the device)
    threads: int
    clock: str                    # "wall", or "cpu" (thread CPU time, for a shared host)
    cores: list[int] | None
    timing: dict                  # optional warmup / repeats / min_seconds / passes / precision / max_seconds per LUT entry
    tvm_trials: int               # MetaSchedule trials per LUT micro-model for --backend tvm
    power: dict | None
    roofline: dict | None
    lut_measured: bool
    path: Path
    raw: dict = field(repr=False, default_factory=dict)

    def providers(self) -> list[str]:
        return list(self.runtimes.get("ort", {}).get("providers", ["CPUExecutionProvider"]))

    def tvm_target(self) -> dict | None:
        return self.runtimes.get("tvm", {}).get("target")


@dataclass
class DeviceSpec:
    raw: str                      # as the user wrote it
    kind: str                     # "local" | "adb" | "ssh" | "rpc"
    profile: DeviceProfile | None = None
    serial: str | None = None     # adb
    user: str | None = None       # ssh
    host: str | None = None       # ssh, rpc
    port: int | None = None       # ssh (None = 22), rpc
    key: str | None = None        # rpc device key


def load_profile_file(path: str | Path) -> DeviceProfile:
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path}: no such device profile") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: cannot read device profile ({type(e).__name__})") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path}: invalid TOML ({e})") from None
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(PROFILE_SCHEMA).iter_errors(doc))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "top level"
        raise UsageError(f"{path}: invalid device profile at {where}: {error.message}")
    measure = doc.get("measure", {})
    return DeviceProfile(
        name=doc["name"], description=doc["description"], reach=doc["reach"]["kind"],
        address=doc["reach"].get("address"), cpu=doc["cpu"], gpu=doc.get("gpu"),
        runtimes=doc["runtimes"], channel_step=measure.get("channel_step", "measure"),
        threads=measure.get("threads", 1), clock=measure.get("clock", "wall"), cores=measure.get("cores"),
        timing={k: measure[k] for k in ("warmup", "repeats", "min_seconds", "passes", "precision", "max_seconds",
                                                   "reference") if k in measure},
        tvm_trials=measure.get("tvm_trials", 0), power=doc.get("power"),
        roofline=doc.get("roofline"), lut_measured=doc.get("lut", {}).get("measured", False),
        path=path, raw=doc)


def _folders(folder: str | Path | None) -> list[Path]:
    return [Path(folder)] if folder is not None else locations.profile_dirs()


def profile_files(folder: str | Path | None = None) -> list[Path]:
    """Every profile file by name, the first folder's winning (user profiles over packaged)."""
    found: dict[str, Path] = {}
    for f in _folders(folder):
        for p in sorted(f.glob("*.toml")) if f.is_dir() else []:
            found.setdefault(p.stem, p)
    return [found[k] for k in sorted(found)]


def list_profiles(folder: str | Path | None = None) -> list[DeviceProfile]:
    return [load_profile_file(p) for p in profile_files(folder)]


def load_profile(name: str, folder: str | Path | None = None) -> DeviceProfile:
    folders = _folders(folder)
    path = next((f / f"{name}.toml" for f in folders if (f / f"{name}.toml").is_file()), None)
    if path is None:
        known = ", ".join(p.stem for p in profile_files(folder))
        where = " or ".join(str(f) for f in folders)
        raise UsageError(f"--device {name}: no such profile in {where} (known: {known}; "
                         "or adb:SERIAL, ssh:USER@HOST[:PORT], rpc:HOST:PORT/KEY, a .toml path)")
    return load_profile_file(path)


_SSH = re.compile(r"^(?P<user>[^@]+)@(?P<host>\[[^\]]+\]|[^:]+)(?::(?P<port>\d+))?$")
_RPC = re.compile(r"^(?P<host>\[[^\]]+\]|[^:/]+):(?P<port>\d+)/(?P<key>.+)$")


def parse_device(spec: str, folder: str | Path | None = None) -> DeviceSpec:
    """DEVICE string -> DeviceSpec; a bad spec is a UsageError naming --device."""
    if not spec:
        raise UsageError("--device: empty device spec")
    if spec.startswith("adb:"):
        serial = spec[4:]
        if not serial:
            raise UsageError(f"--device {spec}: adb needs a serial (adb:SERIAL)")
        return DeviceSpec(raw=spec, kind="adb", serial=serial)
    if spec.startswith("ssh:"):
        m = _SSH.match(spec[4:])
        if not m:
            raise UsageError(f"--device {spec}: expected ssh:USER@HOST[:PORT]")
        port = int(m["port"]) if m["port"] else None
        if port is not None and not 0 < port < 65536:
            raise UsageError(f"--device {spec}: port {port} out of range")
        return DeviceSpec(raw=spec, kind="ssh", user=m["user"], host=m["host"].strip("[]"), port=port)
    if spec.startswith("rpc:"):
        m = _RPC.match(spec[4:])
        if not m or not 0 < int(m["port"]) < 65536:
            raise UsageError(f"--device {spec}: expected rpc:HOST:PORT/KEY")
        return DeviceSpec(raw=spec, kind="rpc", host=m["host"].strip("[]"), port=int(m["port"]), key=m["key"])
    if spec.endswith(".toml") or "/" in spec:
        profile = load_profile_file(spec)
    else:
        profile = load_profile(spec, folder)
    if profile.reach == "local":
        return DeviceSpec(raw=spec, kind="local", profile=profile)
    if not profile.address:
        # enough to predict from its LUT or roofline; open_device() asks for an address
        return DeviceSpec(raw=spec, kind=profile.reach, profile=profile)
    remote = parse_device(profile.address, folder)
    if remote.kind != profile.reach:
        raise UsageError(f"{profile.path}: reach.address {profile.address!r} is not a {profile.reach} address")
    remote.profile = profile
    return remote


def address_example(kind: str) -> str:
    return {"adb": "adb:SERIAL", "ssh": "ssh:USER@HOST[:PORT]", "rpc": "rpc:HOST:PORT/KEY"}.get(kind, kind)
