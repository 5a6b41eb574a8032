"""A throwaway OpenSSH server on 127.0.0.1 for tests: its own host key, user key,
authorized_keys and sshd_config in a temporary folder, on a free port.

    with SshServer(tmp_path) as server:
        server.env()  # EDGEPRUNE_SSH_KEY / EDGEPRUNE_SSH_KNOWN_HOSTS for the client side
        server.spec   # "ssh:root@127.0.0.1:PORT"

sshd comes from Debian's openssh-server, installed here with apt-get when missing (CI is a
fresh machine run as root). Nothing outside the temporary folder is changed except
/run/sshd, the privilege-separation folder sshd insists on.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.devices.system_tools import ensure_debian

SSHD = "/usr/sbin/sshd"


def ensure_openssh() -> None:
    ensure_debian({SSHD: "openssh-server", "/usr/bin/ssh": "openssh-client", "/usr/bin/ssh-keygen": "openssh-client"})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SshServer:
    def __init__(self, folder: Path):
        self.dir = Path(folder)
        self.user = getpass.getuser()
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def spec(self) -> str:
        return f"ssh:{self.user}@127.0.0.1:{self.port}"

    @property
    def key(self) -> Path:
        return self.dir / "user_key"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    def env(self) -> dict[str, str]:
        return {"EDGEPRUNE_SSH_KEY": str(self.key), "EDGEPRUNE_SSH_KNOWN_HOSTS": str(self.known_hosts)}

    def __enter__(self) -> "SshServer":
        ensure_openssh()
        self.dir.mkdir(parents=True, exist_ok=True)
        for name in ("host_key", "user_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"edgeprune-test-{name}",
                            "-f", str(self.dir / name)], check=True, timeout=30)
        shutil.copyfile(self.dir / "user_key.pub", self.dir / "authorized_keys")
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        for _ in range(5):  # another process may take the port between picking and binding
            self.port = free_port()
            config = self.dir / "sshd_config"
            config.write_text("\n".join([
                f"Port {self.port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {self.dir / 'host_key'}",
                f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
                f"PidFile {self.dir / 'sshd.pid'}",
                "PermitRootLogin prohibit-password",  # key only: the test logs in as root in CI
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",  # the temporary folder's permissions are the test runner's
                "LogLevel ERROR",
                "",
            ]))
            if self._start():
                return self
            self.stop()
        raise RuntimeError(f"sshd did not start: {(self.dir / 'sshd.log').read_text()[-500:]}")

    def _start(self) -> bool:
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.dir / "sshd_config")],
                                     stdout=subprocess.DEVNULL, stderr=open(self.dir / "sshd.log", "ab"))
        return self._wait_listening()

    def pull_the_plug(self) -> None:
        """The board drops off the network: the server and every session it serves (and the
        commands they run) end at once; new connections are refused."""
        import psutil

        sessions = psutil.Process(self.proc.pid).children(recursive=True)
        self.proc.kill()
        self.proc.wait()
        for p in sessions:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(sessions, timeout=10)

    def plug_back_in(self) -> None:
        if not self._start():
            raise RuntimeError(f"sshd did not restart: {(self.dir / 'sshd.log').read_text()[-500:]}")

    def _wait_listening(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __exit__(self, *exc) -> None:
        self.stop()
