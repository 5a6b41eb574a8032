"""The aarch64 device bundle: a glibc Python with numpy and the runtime wheels, for devices
that have no Python (a stock Android phone).

A bundle is a folder laid out like a Debian arm64 root filesystem (what `edgeprune bundle`
builds, devices/bundle_build.py). It is pushed once to the device's work folder
and Python is started through the bundle's own glibc loader, `ld-linux-aarch64.so.1
--library-path ...`, so the device's libc (bionic on Android) is never involved and no
absolute path in the bundle has to exist on the device.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

LOADER = "lib/aarch64-linux-gnu/ld-linux-aarch64.so.1"
LIBRARY_DIRS = ("lib/aarch64-linux-gnu", "usr/lib/aarch64-linux-gnu")


@dataclass(frozen=True)
class Bundle:
    local: Path
    python: str          # e.g. "usr/bin/python3.11", relative to the bundle's root
    version: str         # e.g. "3.11"

    def launcher(self, root: str) -> tuple[list[str], dict[str, str]]:
        """The command and environment that start the bundle's Python from a bundle placed at
        `root` on the device (absolute, or relative to the folder the command runs in)."""
        argv = [f"{root}/{LOADER}", "--library-path", ":".join(f"{root}/{d}" for d in LIBRARY_DIRS),
                f"{root}/{self.python}"]
        env = {"PYTHONHOME": f"{root}/usr",
               "PYTHONPATH": f"{root}/usr/local/lib/python{self.version}/dist-packages",
               "PYTHONDONTWRITEBYTECODE": "1"}
        return argv, env

    def identity(self) -> str:
        """Changes when any file is added, removed or resized: decides whether to push again."""
        h = hashlib.sha256()
        for folder, dirs, files in sorted(os.walk(self.local)):
            dirs.sort()
            for name in sorted(files):
                path = Path(folder) / name
                size = path.lstat().st_size
                h.update(f"{path.relative_to(self.local)}\0{size}\n".encode())
        return h.hexdigest()[:16]


def open_bundle(path: str | os.PathLike) -> Bundle:
    local = Path(path)
    if not (local / LOADER).exists():
        raise UsageError(f"{local}: not a device bundle (no {LOADER}); build one with "
                         "`edgeprune bundle -o DIR`")
    pythons = sorted(p for p in (local / "usr/bin").glob("python3.*") if p.name[len("python3."):].isdigit())
    if not pythons:
        raise UsageError(f"{local}: not a device bundle (no usr/bin/python3.N)")
    python = pythons[-1]
    return Bundle(local=local, python=str(python.relative_to(local)), version=python.name[len("python"):])
