"""`open_device(spec) -> Device`: the one place a DEVICE string becomes a live device.

Local profiles (and `host`) run here; `adb:`, `ssh:` and `rpc:` devices live in
edgeprune/devices/adb.py, ssh.py and rpc.py as AdbDevice, SshDevice and RpcDevice, each
constructed from the parsed `DeviceSpec`. They are imported only when asked for.
"""

from __future__ import annotations

import importlib

from ..errors import UsageError
from .base import Device
from .profile import DeviceSpec, address_example, parse_device

_REMOTE = {"adb": ("adb", "AdbDevice"), "ssh": ("ssh", "SshDevice"), "rpc": ("rpc", "RpcDevice")}


def open_device(spec: str | DeviceSpec) -> Device:
    parsed = parse_device(spec) if isinstance(spec, str) else spec
    if parsed.kind == "local":
        from .host import HostDevice
        return HostDevice(parsed)
    module_name, class_name = _REMOTE[parsed.kind]
    if parsed.profile is None and parsed.kind in ("adb", "ssh"):
        from .detect import with_profile

        parsed = with_profile(parsed)
    if parsed.serial is None and parsed.host is None:
        raise UsageError(f"--device {parsed.raw}: this profile is reached over {parsed.kind}; pass --device "
                         f"{address_example(parsed.kind)} or set reach.address in {parsed.profile.path}")
    try:
        module = importlib.import_module(f"edgeprune.devices.{module_name}")
    except ModuleNotFoundError as e:
        if e.name == f"edgeprune.devices.{module_name}":
            raise UsageError(f"--device {parsed.raw}: {parsed.kind} devices are not available in this build") from None
        raise
    return getattr(module, class_name)(parsed)
