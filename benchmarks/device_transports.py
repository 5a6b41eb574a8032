"""The same micro-model tasks timed on this machine directly, through the stand-in phone
(adb) and through a loopback OpenSSH board, side by side in one run.

What it shows: the remote paths measure the same thing (median ratios near 1; the runner
does the timing on the device, so the link's latency stays out of the numbers) and what
each path costs in wall time per batch (pushes, job setup, polling).

    .venv/bin/python benchmarks/device_transports.py [--tasks 6]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeprune.devices.adb import AdbDevice  # noqa: E402
from edgeprune.devices.base import BenchTask  # noqa: E402
from edgeprune.devices.host import HostDevice  # noqa: E402
from edgeprune.devices.ssh import SshDevice  # noqa: E402
from tests.devices.adb_phone import SERIAL, Phone  # noqa: E402
from tests.devices.micro import conv_model  # noqa: E402
from tests.devices.sshd_server import SshServer  # noqa: E402


class _Env:
    """monkeypatch's setenv/delenv for a script: the environment of this process."""

    def setenv(self, k, v):
        os.environ[k] = v

    def delenv(self, k, raising=False):
        os.environ.pop(k, None)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=6)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        core = max(os.sched_getaffinity(0))
        tasks = [BenchTask(id=f"conv|{c}", model=conv_model(tmp, c, c_in=32, size=28), cores=[core],
                           warmup=5, repeats=50, min_seconds=0.3) for c in range(16, 16 * (args.tasks + 1), 16)]
        Phone(tmp / "phone", _Env())
        with SshServer(tmp / "sshd") as server:
            os.environ.update(server.env())
            os.environ["EDGEPRUNE_DEVICE_WORKDIR"] = str(tmp / "board")
            devices = {"host": HostDevice(), "adb (stand-in)": AdbDevice(SERIAL),
                       "ssh (loopback)": SshDevice(server.user, "127.0.0.1", server.port)}
            medians, walls = {}, {}
            for name, device in devices.items():
                started = time.monotonic()
                medians[name] = {r.id: r.median_ms for r in device.measure(tasks)}
                walls[name] = time.monotonic() - started
    names = list(devices)
    print(f"{len(tasks)} conv tasks (32->c_out, 28x28), 1 thread on core {core}; median ms per task")
    print(f"{'task':<10}" + "".join(f"{n:>16}" for n in names) + "".join(f"{n.split()[0] + '/host':>12}" for n in names[1:]))
    for t in tasks:
        row = [medians[n][t.id] for n in names]
        print(f"{t.id:<10}" + "".join(f"{v:>16.4f}" for v in row) + "".join(f"{v / row[0]:>12.3f}" for v in row[1:]))
    print(f"{'wall s':<10}" + "".join(f"{walls[n]:>16.1f}" for n in names))


if __name__ == "__main__":
    main()
