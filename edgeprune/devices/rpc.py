"""Device pools behind a TVM RPC tracker: `rpc:HOST:PORT/KEY`.

Many CI jobs share a few phones: each job asks the tracker for a device by key (waiting
while all are busy), uploads a compiled TVM library, and times it there with
`time_evaluator`. Only TVM libraries run this way: an ONNX task model is compiled first for
the profile's TVM target (this host's CPU when there is no profile) by the TVM backend,
untuned unless its database already has records (untuned CPU code is slow: FACTS.md).

Lost connections, a tracker that does not answer and a device that never frees up are
`DeviceError`s; results already handed to `on_result` stay valid.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import DeviceError, UsageError
from .base import BenchTask, TaskResult
from .profile import DeviceSpec
from .remote import file_sha256
from .transport import Retry

LIBRARY_SUFFIXES = (".so", ".tar", ".dylib")
MAX_RUNS = 100000


def cache_dir() -> Path:
    from .. import locations

    return locations.rpc_libs_dir()


def wait_for_tracker(host: str, port: int, what: str, retry: Retry | None = None, timeout: float = 5.0) -> None:
    """Fail fast (with backoff on transient refusals) instead of TVM's own minute of retries."""
    retry = retry or Retry.from_env()
    delays = list(retry.delays())
    for attempt in range(len(delays) + 1):
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return
        except OSError as e:
            error = e
        if attempt < len(delays):
            time.sleep(delays[attempt])
    raise DeviceError(f"{what}: cannot reach the RPC tracker at {host}:{port} ({error.strerror or error})")


def tracker_queue(host: str, port: int, what: str | None = None) -> dict[str, dict[str, int]]:
    """key -> {"free": devices idle, "pending": requests waiting} as the tracker reports it now."""
    from tvm import rpc

    what = what or f"rpc:{host}:{port}"
    wait_for_tracker(host, port, what, Retry(attempts=1))
    try:
        summary = rpc.connect_tracker(host, port).summary()
    except Exception as e:  # TVM raises its own and socket errors
        raise DeviceError(f"{what}: the tracker did not answer ({_last_line(e)})") from None
    return {key: {"free": int(v.get("free", 0)), "pending": int(v.get("pending", 0))}
            for key, v in summary.get("queue_info", {}).items()}


class RpcDevice:
    """One device of the pool `key` at the tracker `host:port`, held for a `measure` call."""

    def __init__(self, host: "str | DeviceSpec", port: int | None = None, key: str | None = None,
                 profile: Any = None, *, wait_s: float | None = None, session_timeout_s: float = 0):
        parsed = host if isinstance(host, DeviceSpec) else None
        if parsed is not None:
            host, port, key, profile = parsed.host, parsed.port, parsed.key, profile or parsed.profile
        if not host or not port or not key:
            raise DeviceError("rpc: expected rpc:HOST:PORT/KEY")
        self.host, self.port, self.key = host, int(port), key
        self.parsed = parsed
        self.profile = profile
        self.spec = parsed.raw if parsed else f"rpc:{host}:{self.port}/{key}"
        # how long to queue for a free device: a pool shared by many jobs may be busy
        self.wait_s = wait_s if wait_s is not None else float(os.environ.get("EDGEPRUNE_RPC_WAIT", "600"))
        self.session_timeout_s = session_timeout_s

    # ------------------------------------------------------------------ Device protocol
    def state(self) -> dict[str, Any]:
        return {}  # TVM RPC gives no access to the device's sysfs

    def close(self) -> None:
        pass

    def measure(self, tasks: list[BenchTask],
                on_result: Callable[[TaskResult], None] | None = None) -> list[TaskResult]:
        if not tasks:
            return []
        for t in tasks:
            if t.backend != "tvm":
                raise UsageError(f"--device {self.spec}: RPC devices run TVM libraries only; use --backend tvm")
        libraries = {t.id: self._library(t) for t in tasks}  # compile before holding a device
        session = self._request()
        results = []
        loaded: dict[str, Any] = {}     # library name -> module, for this session
        try:
            for task in tasks:
                result = self._measure_one(session, task, *libraries[task.id], loaded)
                results.append(result)
                if on_result:
                    on_result(result)
        finally:
            # the board goes back to the pool only when the session object is freed, and the
            # remote module and VM hold it in reference cycles: without this a compile that
            # times on the board and then tunes there waits on its own session
            del session, loaded
            gc.collect()
        return results

    # ------------------------------------------------------------------ steps
    def _request(self):
        from tvm import rpc

        wait_for_tracker(self.host, self.port, self.spec)
        queue = tracker_queue(self.host, self.port, self.spec)
        if self.key not in queue:
            known = ", ".join(sorted(queue)) or "none"
            raise DeviceError(f"{self.spec}: no device with key '{self.key}' at the tracker (keys: {known})")
        box: dict[str, Any] = {}

        def request():
            try:
                tracker = rpc.connect_tracker(self.host, self.port)
                box["session"] = tracker.request(self.key, priority=1, session_timeout=self.session_timeout_s)
            except Exception as e:
                box["error"] = e

        # TrackerSession.request blocks until a device frees up; bound the wait
        worker = threading.Thread(target=request, daemon=True)
        worker.start()
        worker.join(self.wait_s)
        if worker.is_alive():
            raise DeviceError(f"{self.spec}: no free device with key '{self.key}' within {self.wait_s:g}s")
        if "error" in box:
            raise DeviceError(f"{self.spec}: the tracker gave no device ({_last_line(box['error'])})")
        return box["session"]

    def _library(self, task: BenchTask) -> tuple[Path, dict]:
        """(library file, run options) for a task: as given, or compiled from its ONNX model."""
        model = Path(task.model)
        if model.suffix in LIBRARY_SUFFIXES:
            return model, dict(task.options)
        if model.suffix != ".onnx":
            raise UsageError(f"{model}: an RPC task needs a TVM library or an .onnx model")
        from ..backends.base import Artifact, TargetSpec

        target = TargetSpec.from_profile(self.profile) if self.profile is not None and \
            self.profile.tvm_target() else TargetSpec(name="host", tvm={"kind": "llvm"})
        key = hashlib.sha256(f"{file_sha256(model)}|{json.dumps(target.tvm, sort_keys=True)}".encode()).hexdigest()[:24]
        folder = cache_dir() / key
        if not (folder / "tvm.artifact.json").exists():
            from ..backends.tvm import TvmBackend

            folder.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=folder.parent))
            try:
                TvmBackend().compile(str(model), target, tmp, {"check": False})
                try:
                    os.replace(tmp, folder)  # another process may have finished first: keep theirs
                except OSError:
                    pass
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        artifact = Artifact.load(folder, "tvm")
        return artifact.path("model"), {**artifact.run["options"], **task.options}

    def _measure_one(self, session, task: BenchTask, library: Path, options: dict,
                     loaded: dict[str, Any]) -> TaskResult:
        from tvm import relax

        try:
            # a unique name per library, uploaded and loaded once per session: a file written
            # again under a name the server has mapped (a task timed in several passes) would
            # change a loaded shared object under it (the server crashed in dlsym)
            name = f"{file_sha256(library)[:20]}{library.suffix}"
            if name not in loaded:
                session.upload(str(library), target=name)
                loaded[name] = session.load_module(name)
            module = loaded[name]
            if task.threads > 0:
                # as the LUT asks (1 thread per entry): the server's pool otherwise uses every core
                session.get_function("runtime.config_threadpool")(0, int(task.threads))
            dev = session.device(options.get("device", "cpu"), 0)
            vm = relax.VirtualMachine(module, dev)
            args = self._inputs(task, options, session, dev)
            vm.set_input("main", *args)
            if task.warmup > 0:
                vm.time_evaluator("invoke_stateful", dev, number=task.warmup, repeat=1)("main")
            runs = max(1, task.repeats)
            times = list(vm.time_evaluator("invoke_stateful", dev, number=1, repeat=runs)("main").results)
            total = sum(times)
            if total < task.min_seconds and total > 0:
                more = min(MAX_RUNS, int(np.ceil(runs * (task.min_seconds - total) / total)))
                times += list(vm.time_evaluator("invoke_stateful", dev, number=1, repeat=more)("main").results)
            outputs = None
            if task.save_outputs:
                vm.invoke_stateful("main")
                out = vm.get_outputs("main")
                outs = [out] if hasattr(out, "numpy") else list(out)
                names = options.get("outputs") or [f"output{i}" for i in range(len(outs))]
                outputs = {n: o.numpy() for n, o in zip(names, outs)}
        except (ConnectionError, OSError, socket.timeout) as e:
            raise DeviceError(f"{self.spec}: lost the device while measuring {task.id} ({_last_line(e)})") from None
        except Exception as e:  # a TVMError: the session may be dead or the task bad
            if any(w in str(e).lower() for w in ("connection", "socket", "kshutdown", "rpc session")):
                raise DeviceError(f"{self.spec}: lost the device while measuring {task.id} ({_last_line(e)})") from None
            return TaskResult(id=task.id, ok=False, error=f"{type(e).__name__}: {_last_line(e)}")
        ms = np.sort(np.asarray(times) * 1e3)
        return TaskResult(id=task.id, ok=True, median_ms=float(np.median(ms)),
                          p90_ms=float(np.percentile(ms, 90)), count=len(ms), outputs=outputs,
                          state={"rpc_key": self.key, "threads": task.threads})

    def _inputs(self, task: BenchTask, options: dict, session, dev) -> list:
        import tvm

        specs = options.get("inputs") or []
        if str(task.inputs) != "random":
            with np.load(task.inputs) as data:
                arrays = [np.ascontiguousarray(data[name], dtype=dtype) for name, _, dtype in specs]
        else:
            rng = np.random.default_rng(0)  # as the runner does: the same inputs everywhere
            arrays = [rng.standard_normal(shape).astype(dtype) if np.dtype(dtype).kind == "f"
                      else rng.integers(0, 2, size=shape).astype(dtype) for _, shape, dtype in specs]
        return [tvm.runtime.tensor(a, dev) for a in arrays]


def _last_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[-1][:300] if text else type(e).__name__
