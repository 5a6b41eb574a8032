"""A TVM RPC device pool on loopback for tests: a real `python -m tvm.exec.rpc_tracker` and
one `python -m tvm.exec.rpc_server --tracker ... --key ...` registered with it: this host's,
or an emulated aarch64 board's (runtimes/emulation/rpc_board.sh)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.devices.sshd_server import free_port

START_TIMEOUT_S = 240  # importing tvm twice on a busy 2-core machine is slow
RPC_BOARD = Path(__file__).resolve().parents[2] / "runtimes" / "emulation" / "rpc_board.sh"


class RpcPool:
    def __init__(self, folder: Path, key: str = "testpool", emulated: bool = False):
        self.dir = Path(folder)
        self.key = key
        self.emulated = emulated
        self.port = 0
        self.procs: list[subprocess.Popen] = []

    @property
    def spec(self) -> str:
        return f"rpc:127.0.0.1:{self.port}/{self.key}"

    def _start(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.dir / f"{name}.log", "wb")
        # a group of its own: the server's session workers go down with it
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHON": sys.executable})
        self.procs.append(proc)
        return proc

    def __enter__(self) -> "RpcPool":
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        deadline = time.monotonic() + START_TIMEOUT_S
        tracker = self._start("tracker", [sys.executable, "-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1",
                                          "--port", str(self.port),
                                          "--port-end", str(self.port + 1), "--silent"])
        # the server gives up on a tracker that is not listening within a minute: wait first
        while not self._listening():
            self._check(tracker, deadline, "tracker")
            time.sleep(0.2)
        server_port = free_port()
        if self.emulated:
            server = self._start("server", ["bash", str(RPC_BOARD), f"127.0.0.1:{self.port}", self.key,
                                            str(server_port)])
        else:
            server = self._start("server", [sys.executable, "-m", "tvm.exec.rpc_server", "--tracker",
                                            f"127.0.0.1:{self.port}", "--key", self.key, "--host", "127.0.0.1",
                                            "--port", str(server_port), "--port-end", str(server_port + 50)])
        from edgeprune.devices.rpc import tracker_queue

        while self.key not in tracker_queue("127.0.0.1", self.port):
            self._check(server, deadline, "server")
            time.sleep(0.5)
        return self

    def profile(self, path: Path, *, arch: str = "x86_64", target: str = '{ kind = "llvm" }') -> Path:
        """A device profile for the pool, with a fixed channel step and short timings."""
        Path(path).write_text(f'''
name = "{self.key}"
description = "a loopback TVM RPC pool"
[reach]
kind = "rpc"
address = "{self.spec}"
[cpu]
arch = "{arch}"
cores = 2
[runtimes.tvm]
target = {target}
[measure]
channel_step = 4
threads = 1
warmup = 1
repeats = 3
min_seconds = 0.0
''')
        return Path(path)

    def wait_free(self, timeout_s: float = 30.0) -> None:
        """Until the pool's device is idle again: a server re-registers with the tracker a
        moment after a session on it ends, so a test right after another sees it busy."""
        from edgeprune.devices.rpc import tracker_queue

        deadline = time.monotonic() + timeout_s
        while tracker_queue("127.0.0.1", self.port).get(self.key, {}).get("free", 0) < 1:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the RPC server did not become free within {timeout_s:.0f} s")
            time.sleep(0.2)

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def _check(self, proc: subprocess.Popen, deadline: float, name: str) -> None:
        if proc.poll() is not None or time.monotonic() > deadline:
            self.stop()
            log = (self.dir / f"{name}.log").read_text(errors="replace")[-800:]
            raise RuntimeError(f"TVM RPC {name} did not start: {log}")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        self.procs = []

    def __exit__(self, *exc) -> None:
        self.stop()
