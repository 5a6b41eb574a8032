"""The Device protocol and the typed records that cross it.

A device measures *tasks* (a model file, a backend, how to time it) and streams back one
`TaskResult` per task as it finishes, so a caller can save progress after every entry and a
disconnect loses nothing already measured. How a device is reached (in-process, adb, ssh,
a TVM RPC tracker) is the implementation's business. See runtimes/PROTOCOL.md for the
runner those implementations drive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable


@dataclass
class BenchTask:
    id: str
    model: Path
    backend: str = "ort"           # "ort" | "tvm"
    inputs: str | Path = "random"  # "random" or an .npz keyed by input name
    threads: int = 1
    cores: list[int] | None = None
    warmup: int = 5
    repeats: int = 30
    min_seconds: float = 0.2
    save_outputs: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    clock: str = "wall"            # "wall" | "cpu" (thread CPU time; threads == 1 only)
    # past repeats and min_seconds, time on until the median's 95% interval is within
    # ±precision of it (0: stop there), but never longer than max_seconds
    precision: float = 0.0
    max_seconds: float | None = None
    # a fixed model timed just before and after (the host runner): its time tracks how fast the
    # shared machine is running at that moment
    reference: Path | None = None


def timing_fields(task: BenchTask) -> dict[str, Any]:
    """The runner's stopping-rule fields of a task, only when set: a job for an older runner
    stays what it was."""
    out: dict[str, Any] = {}
    if task.precision:
        out["precision"] = task.precision
    if task.max_seconds is not None:
        out["max_seconds"] = task.max_seconds
    return out


@dataclass
class TaskResult:
    id: str
    ok: bool
    median_ms: float | None = None
    p90_ms: float | None = None
    count: int = 0
    energy_mj: float | None = None
    energy_source: str | None = None   # "rapl", "battery", "hwmon", or None (not measured)
    energy_note: str | None = None     # why a sensor present did not measure (e.g. battery charging)
    outputs: dict[str, Any] | None = None  # name -> numpy array, when save_outputs
    state: dict[str, Any] = field(default_factory=dict)  # governor, frequencies, thermal
    converged: bool | None = None      # with a precision: whether the median reached it in time
    reference_ms: float | None = None  # the task's reference model's median, timed beside it
    error: str | None = None


@runtime_checkable
class Device(Protocol):
    spec: str  # as the user wrote it: "host", "adb:SERIAL", "ssh:USER@HOST:PORT", "rpc:HOST:PORT/KEY"

    def measure(self, tasks: list[BenchTask],
                on_result: Callable[[TaskResult], None] | None = None) -> list[TaskResult]:
        """Run every task; call on_result after each. Raises DeviceError when the device is
        lost (the results already passed to on_result stay valid)."""
        ...

    def state(self) -> dict[str, Any]:
        """CPU governor, frequencies and thermal readings now (empty where unreadable)."""
        ...

    def close(self) -> None:
        ...
