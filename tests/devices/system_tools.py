"""Debian packages the device tests need (sshd, the real adb client), installed with
apt-get when missing: CI is a fresh machine run as root, and asks nothing of anyone."""

from __future__ import annotations

import os
import subprocess

from filelock import FileLock


def ensure_debian(programs: dict[str, str]) -> None:
    """programs: absolute path of a program -> the Debian package that ships it."""
    missing = sorted({pkg for path, pkg in programs.items() if not os.path.exists(path)})
    if not missing:
        return
    if os.geteuid() != 0:
        raise RuntimeError(f"Debian packages {missing} are not installed and installing them needs root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
    # two test processes installing at once would fight over dpkg's lock
    with FileLock("/tmp/edgeprune-apt.lock", timeout=900):
        if subprocess.run(install, env=env, capture_output=True, timeout=900).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, capture_output=True, timeout=900)
            subprocess.run(install, env=env, check=True, capture_output=True, timeout=900)
