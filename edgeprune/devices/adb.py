"""Phones over adb: `adb:SERIAL`.

The real `adb` client (Debian package `adb`) is driven with argument lists: `-s SERIAL` is
one argument, so a serial is never interpreted by any shell. The runner and models go to
/data/local/tmp/edgeprune; a stock phone has no Python, so the runner is started by the aarch64
device bundle (`edgeprune bundle`; the profile's [reach] bundle or EDGEPRUNE_DEVICE_BUNDLE),
pushed once and started through its own loader, or by the command the profile's python (or
EDGEPRUNE_DEVICE_PYTHON) names where the device has a Python. Energy comes from the battery's current_now x voltage_now when the phone has them.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ..errors import DeviceError
from . import transport
from .profile import DeviceSpec
from .remote import RemoteDevice, remote_config

WORKDIR = "/data/local/tmp/edgeprune"

# What the adb client prints when the phone (not the command run on it) is the problem.
_LINK_ERRORS = (
    "device offline", "not found", "no devices/emulators found", "protocol fault",
    "connection reset", "device still", "closed", "cannot connect to daemon",
    "failed to connect", "daemon not running", "transport",
)


def adb_program() -> str:
    return os.environ.get("EDGEPRUNE_ADB", "adb")


def _link_failure(returncode: int, stderr: bytes) -> bool:
    # only adb's own lines count: "sh: python3: not found" from the phone is the command's failure
    if returncode == 0:
        return False
    for line in stderr.decode(errors="replace").lower().splitlines():
        line = line.strip()
        if line.startswith(("error:", "adb: ")) and any(e in line for e in _LINK_ERRORS):
            return True
    return False


class AdbLink:
    def __init__(self, serial: str):
        self.serial = serial
        self.what = f"adb:{serial}"

    def _args(self, *rest: str) -> list[str]:
        return [adb_program(), "-s", self.serial, *rest]

    def _run(self, *rest: str, timeout: float, input: bytes | None = None, check: bool = True):
        return transport.run(self._args(*rest), what=self.what, timeout=timeout, input=input,
                             check=check, transient=lambda done: _link_failure(done.returncode, done.stderr))

    def shell(self, script: str, *, timeout: float, input: bytes | None = None, check: bool = True):
        return self._run("shell", script, timeout=timeout, input=input, check=check)

    def push(self, local: Path, remote: str, *, timeout: float) -> None:
        self._run("push", os.fspath(local), remote, timeout=timeout)

    def push_tree(self, local: Path, remote: str, *, timeout: float) -> None:
        """A whole folder; `remote` must not exist yet (adb then creates it with the contents)."""
        self._run("push", os.fspath(local), remote, timeout=timeout)

    def pull(self, remote: str, *, timeout: float) -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "data"
            self._run("pull", remote, os.fspath(local), timeout=timeout)
            return local.read_bytes()

    def spawn(self, script: str, stdout, stderr) -> subprocess.Popen:
        try:
            return subprocess.Popen(self._args("shell", script), stdin=subprocess.DEVNULL,
                                    stdout=stdout, stderr=stderr, start_new_session=True)
        except FileNotFoundError:
            raise DeviceError(f"{self.what}: '{adb_program()}' is not installed") from None

    def is_link_failure(self, returncode: int, stderr: bytes) -> bool:
        return _link_failure(returncode, stderr)


class AdbDevice(RemoteDevice):
    """An Android phone reached with `adb -s SERIAL`; `serial` may be the parsed DeviceSpec."""

    def __init__(self, serial: "str | DeviceSpec", profile: Any = None, *,
                 python: list[str] | str | None = None, cores: list[int] | None = None,
                 workdir: str | None = None):
        parsed = serial if isinstance(serial, DeviceSpec) else None
        if parsed is not None:
            serial, profile = parsed.serial, profile or parsed.profile
        if not serial:
            raise DeviceError("adb: empty serial (expected adb:SERIAL)")
        config = remote_config(profile, workdir=workdir or WORKDIR, python=python, cores=cores)
        super().__init__(parsed.raw if parsed else f"adb:{serial}", AdbLink(serial), config, parsed)
        self.serial = serial
