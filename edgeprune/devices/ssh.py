"""Linux boards over OpenSSH: `ssh:USER@HOST[:PORT]` (Raspberry Pi, Jetson, ...).

The OpenSSH client runs non-interactively (BatchMode: a missing key fails at once instead of
asking for a password), with a connect timeout and keep-alives so a board that drops off the
network is noticed. New host keys are accepted and remembered (accept-new); a changed one is
refused. The user and host are separate arguments after `--`, so neither is ever read as an
option or by a shell. Files are copied with `cat` over the same connection (no scp/rsync on
the board needed); the runner runs with the board's python3 unless the profile says else.

Settings (profile field, else environment): `ssh_key` / EDGEPRUNE_SSH_KEY (identity file),
`known_hosts` / EDGEPRUNE_SSH_KNOWN_HOSTS, `python` / EDGEPRUNE_DEVICE_PYTHON, `workdir`.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

from ..errors import DeviceError
from . import transport
from .profile import DeviceSpec
from .remote import RemoteDevice, device_setting, remote_config

# relative to the login folder, so no assumption about where a writable disk is
WORKDIR = ".cache/edgeprune-device"
CONNECT_TIMEOUT_S = 10
SSH_CONNECTION_FAILED = 255  # ssh's own exit status; the remote command's status otherwise


class SshLink:
    def __init__(self, user: str, host: str, port: int = 22, *, key: str | None = None,
                 known_hosts: str | None = None):
        self.user, self.host, self.port = user, host, int(port)
        self.key, self.known_hosts = key, known_hosts
        self.what = f"ssh:{user}@{host}:{self.port}"

    def _args(self, script: str) -> list[str]:
        args = [os.environ.get("EDGEPRUNE_SSH", "ssh"),
                "-o", "BatchMode=yes",
                "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}",
                "-o", "StrictHostKeyChecking=accept-new",
                "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
                "-o", "LogLevel=ERROR",
                "-p", str(self.port)]
        if self.key:
            args += ["-i", self.key, "-o", "IdentitiesOnly=yes"]
        if self.known_hosts:
            args += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        if self.user:
            args += ["-l", self.user]
        return args + ["--", self.host, script]

    def shell(self, script: str, *, timeout: float, input: bytes | None = None, check: bool = True):
        return transport.run(self._args(script), what=self.what, timeout=timeout, input=input,
                             check=check, transient=lambda done: done.returncode == SSH_CONNECTION_FAILED)

    def push(self, local: Path, remote: str, *, timeout: float) -> None:
        self.shell(f"cat > {shlex.quote(remote)}", input=Path(local).read_bytes(), timeout=timeout)

    def pull(self, remote: str, *, timeout: float) -> bytes:
        return self.shell(f"cat {shlex.quote(remote)}", timeout=timeout).stdout

    def spawn(self, script: str, stdout, stderr) -> subprocess.Popen:
        try:
            return subprocess.Popen(self._args(script), stdin=subprocess.DEVNULL,
                                    stdout=stdout, stderr=stderr, start_new_session=True)
        except FileNotFoundError:
            raise DeviceError(f"{self.what}: 'ssh' is not installed (Debian package openssh-client)") from None

    def is_link_failure(self, returncode: int, stderr: bytes) -> bool:
        return returncode == SSH_CONNECTION_FAILED


class SshDevice(RemoteDevice):
    """A Linux board reached as USER@HOST:PORT; `user` may be the parsed DeviceSpec."""

    def __init__(self, user: "str | DeviceSpec", host: str | None = None, port: int | None = None,
                 profile: Any = None, *, key: str | None = None, known_hosts: str | None = None,
                 python: list[str] | str | None = None, workdir: str | None = None,
                 cores: list[int] | None = None):
        parsed = user if isinstance(user, DeviceSpec) else None
        if parsed is not None:
            user, host, port, profile = parsed.user, parsed.host, parsed.port, profile or parsed.profile
        if not host:
            raise DeviceError("ssh: empty host (expected ssh:USER@HOST[:PORT])")
        port = int(port or 22)
        link = SshLink(user, host, port,
                       key=key or device_setting(profile, "ssh_key", env="EDGEPRUNE_SSH_KEY"),
                       known_hosts=known_hosts or device_setting(profile, "known_hosts",
                                                                 env="EDGEPRUNE_SSH_KNOWN_HOSTS"))
        config = remote_config(profile, workdir=workdir or WORKDIR, python=python, cores=cores)
        super().__init__(parsed.raw if parsed else f"ssh:{user}@{host}:{port}", link, config, parsed)
