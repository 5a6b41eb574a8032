"""What adb and ssh devices share: run `runtimes/runner.py` in a work folder on the device.

The flow, one `measure` call:
1. once per session: make the work folder, push the runner and its backends (skipped when
   the device already has these exact files), link the battery sensor if there is one;
2. look for results an interrupted earlier job left on the device: a task measured there
   but never pulled is delivered, not measured again;
3. push the models the device does not have yet (content-addressed names), write the job;
4. start the runner pinned with `taskset`, and while it runs poll its results file, reading
   the CPU governor, frequencies and thermal zones in the same call, and hand every new
   line to `on_result` at once: a disconnect loses nothing already pulled;
5. on success remove the job folders whose results have been delivered.

Remote commands are shell text on the device side, so every path or word that comes from
outside is quoted with `shlex.quote`; on the host side the transport runs argument lists.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shlex
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from .. import locations
from ..errors import DeviceError
from .base import BenchTask, TaskResult, timing_fields
from .transport import Completed, Retry

RUNTIMES = locations.runtimes_dir()

# Where the device's CPU and thermal state are read from (sysfs: Android and Linux alike).
STATE_GLOBS = (
    "/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor",
    "/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq",
    "/sys/class/thermal/thermal_zone[0-9]*/temp",
)
BATTERY = "/sys/class/power_supply/battery"
HWMON_POWER_GLOBS = ("bus/i2c/drivers/ina3221*/*/hwmon/hwmon*/power*_input",
                     "class/hwmon/hwmon*/power*_input")


def discover_sensor_script(link: str, sys_root: str = "/sys") -> str:
    """POSIX sh (as busybox and toybox run it) that links the device's energy sensor at `link`
    (already shell-quoted) and prints `sensor KIND`: the phone's battery, else the first
    hwmon / INA3221 power rail (a Jetson's or a board's power monitor, in microwatts)."""
    battery = _q(sys_root.rstrip("/") + "/class/power_supply/battery")
    globs = " ".join(f"{_q(sys_root.rstrip('/'))}/{g}" for g in HWMON_POWER_GLOBS)
    return (f"rm -f {link}; "
            f"if [ -r {battery}/current_now ] && [ -r {battery}/voltage_now ]; then "
            f"ln -sfn {battery} {link} && echo sensor battery; else "
            f"for f in {globs}; do "
            f"if [ -r \"$f\" ]; then ln -sfn \"$f\" {link} && echo sensor hwmon; break; fi; done; fi")
_STATE_MARK = "@@edgeprune-state@@"


class Link(Protocol):
    """How commands reach one device (adb or ssh)."""

    what: str  # the device spec, for messages

    def shell(self, script: str, *, timeout: float, input: bytes | None = None,
              check: bool = True) -> Completed:
        """Run shell text on the device; retries transient link failures."""
        ...

    def push(self, local: Path, remote: str, *, timeout: float) -> None:
        ...

    def pull(self, remote: str, *, timeout: float) -> bytes:
        ...

    def spawn(self, script: str, stdout, stderr) -> subprocess.Popen:
        """Start shell text on the device without waiting (the runner)."""
        ...

    def is_link_failure(self, returncode: int, stderr: bytes) -> bool:
        """Whether a failed call failed because the device was lost, not the command."""
        ...


@dataclass
class RemoteConfig:
    workdir: str                       # on the device; absolute, or relative to the login folder
    python: list[str]                  # the command that runs Python there (a bundle launcher on Android)
    cores: list[int] | None = None     # taskset mask for the runner; None = tasks' cores or none
    env: dict[str, str] = field(default_factory=dict)  # extra environment for the runner
    poll_s: float = 0.5
    call_timeout_s: float = 60.0
    push_timeout_s: float = 600.0
    task_timeout_s: float = 900.0      # no new result for this long: the device is stuck
    # energy sensor: (kind, device path) from the profile; None = look for a battery, then hwmon
    sensor: tuple[str, str] | None = None
    use_sensor: bool = True
    bundle: Any = None                 # a devices.bundle.Bundle to push and start Python from


def device_setting(profile: Any, name: str, *, env: str | None = None, default: Any = None) -> Any:
    """A per-device setting: the profile's field (attribute or key) wins, then the
    environment variable, then the default."""
    value = None
    if isinstance(profile, dict):
        value = profile.get(name)
    elif profile is not None:
        # a DeviceProfile: how-to-reach settings sit in its [reach] table
        value = getattr(profile, "raw", {}).get("reach", {}).get(name)
    if value is None and env:
        value = os.environ.get(env) or None
    return default if value is None else value


def remote_config(profile: Any, *, workdir: str, python: list[str] | str | None = None,
                  cores: list[int] | None = None) -> RemoteConfig:
    """The settings adb and ssh devices share, from explicit values, the profile or the
    environment: the device's Python (EDGEPRUNE_DEVICE_PYTHON, or the device bundle
    EDGEPRUNE_DEVICE_BUNDLE pushed and started through its loader), the work folder (EDGEPRUNE_DEVICE_WORKDIR), taskset cores and the
    energy sensor."""
    bundle_path = device_setting(profile, "bundle", env="EDGEPRUNE_DEVICE_BUNDLE")
    bundle, env = None, {}
    if bundle_path and not python:
        from .bundle import open_bundle

        bundle = open_bundle(bundle_path)
        # the runner starts inside jobs/ID: reach the bundle relative to that
        python, env = bundle.launcher("../../bundle")
    python = python or device_setting(profile, "python", env="EDGEPRUNE_DEVICE_PYTHON", default="python3")
    power = getattr(profile, "power", None) or {}
    sensor = (power["kind"], power["path"]) if power.get("kind") in ("rapl", "battery", "hwmon") \
        and power.get("path") else None
    return RemoteConfig(workdir=device_setting(profile, "workdir", env="EDGEPRUNE_DEVICE_WORKDIR", default=workdir),
                        python=shlex.split(python) if isinstance(python, str) else list(python),
                        cores=cores, sensor=sensor, use_sensor=power.get("kind") != "none",
                        env=env, bundle=bundle)


def task_key(task: BenchTask, model_sha: str, inputs_sha: str | None) -> str:
    """What the measurement depends on; equal keys may share one measurement."""
    desc = {"id": task.id, "model": model_sha, "backend": task.backend, "inputs": inputs_sha or "random",
            "clock": task.clock,
            "threads": task.threads, "cores": task.cores, "warmup": task.warmup,
            "repeats": task.repeats, "min_seconds": task.min_seconds, "options": task.options,
            **timing_fields(task)}
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:24]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_STATE_LINE = re.compile(
    r"/sys/devices/system/cpu/cpu(?P<cpu>\d+)/cpufreq/scaling_(?P<what>governor|cur_freq):(?P<cpu_value>.*)"
    r"|/sys/class/thermal/thermal_zone(?P<zone>\d+)/temp:(?P<temp>-?\d+)")


def parse_state(text: str) -> dict[str, Any]:
    """`grep -H . FILES` output (path:value lines) -> governor, freq_khz, thermal_mc."""
    governors, freqs, temps = {}, {}, {}
    for line in text.splitlines():
        m = _STATE_LINE.search(line)
        if not m:
            continue
        if m["zone"] is not None:
            temps[int(m["zone"])] = int(m["temp"])
        elif m["what"] == "governor":
            governors[int(m["cpu"])] = m["cpu_value"].strip()
        elif m["cpu_value"].strip().isdigit():
            freqs[int(m["cpu"])] = int(m["cpu_value"])
    state: dict[str, Any] = {}
    if governors:
        values = [governors[k] for k in sorted(governors)]
        state["governor"] = values[0] if len(set(values)) == 1 else values
    if freqs:
        state["freq_khz"] = [freqs[k] for k in sorted(freqs)]
    if temps:
        state["thermal_mc"] = [temps[k] for k in sorted(temps)]
    return state


def _q(*words: str) -> str:
    return " ".join(shlex.quote(w) for w in words)


class RemoteDevice:
    """A Device reached through a `Link`: the runner does the timing on the device."""

    def __init__(self, spec: str, link: Link, config: RemoteConfig, parsed=None):
        self.spec = spec
        self.parsed = parsed                       # the DeviceSpec, when opened from one
        self.profile = getattr(parsed, "profile", None)
        self.link = link
        self.config = config
        self._prepared = False
        self.sensor_kind: str | None = None        # set by _prepare when a sensor is readable
        self._jobs = f"{config.workdir}/jobs"
        self._models = f"{config.workdir}/models"
        self._runtime = f"{config.workdir}/runtime"

    # ------------------------------------------------------------------ Device protocol
    def state(self) -> dict[str, Any]:
        out = self.link.shell(self._state_script(), timeout=self.config.call_timeout_s, check=False)
        return parse_state(out.stdout.decode(errors="replace"))

    def close(self) -> None:
        pass

    def measure(self, tasks: list[BenchTask],
                on_result: Callable[[TaskResult], None] | None = None) -> list[TaskResult]:
        if not tasks:
            return []
        on_result = on_result or (lambda r: None)
        self._prepare()
        shas = {t.id: file_sha256(Path(t.model)) for t in tasks}
        input_shas = {t.id: file_sha256(Path(t.inputs)) for t in tasks if str(t.inputs) != "random"}
        keyed = {task_key(t, shas[t.id], input_shas.get(t.id)): t for t in tasks}

        results: list[TaskResult] = []

        def deliver(result: TaskResult) -> None:
            results.append(result)
            on_result(result)

        leftovers, old_jobs = self._leftovers()
        todo = {}
        for key, task in keyed.items():
            rec = leftovers.get(key)
            if rec is not None and rec.get("ok") and not task.save_outputs:
                deliver(self._to_result(task, rec, {}, None))
            else:
                todo[key] = task
        if todo:
            job = f"{self._jobs}/{uuid.uuid4().hex[:12]}"
            self._push_inputs(todo.values(), shas, input_shas)
            self._push_job(job, todo, shas, input_shas)
            self._run_job(job, todo, deliver)
            old_jobs.append(job)
        if old_jobs:
            self.link.shell(f"rm -rf {_q(*old_jobs)}", timeout=self.config.call_timeout_s, check=False)
        return results

    # ------------------------------------------------------------------ steps
    def _prepare(self) -> None:
        if self._prepared:
            return
        files = sorted([RUNTIMES / "runner.py", *RUNTIMES.glob("backend_*.py")])
        digest = hashlib.sha256(b"".join(f.name.encode() + f.read_bytes() for f in files)).hexdigest()[:16]
        script = (f"mkdir -p {_q(self._runtime, self._models, self._jobs)} && "
                  f"cat {_q(self._runtime + '/VERSION')} 2>/dev/null; echo; {self._sensor_script()}")
        out = self.link.shell(script, timeout=self.config.call_timeout_s)
        lines = out.stdout.decode(errors="replace").splitlines()
        found = [ln.split()[1] for ln in lines[1:] if ln.startswith("sensor ") and len(ln.split()) == 2]
        self.sensor_kind = found[0] if found else None
        if not lines or lines[0].strip() != digest:
            for f in files:
                self.link.push(f, f"{self._runtime}/{f.name}", timeout=self.config.push_timeout_s)
            self._write_text(f"{self._runtime}/VERSION", digest)
        if self.config.bundle is not None:
            self._push_bundle(self.config.bundle)
        self._prepared = True

    def _push_bundle(self, bundle) -> None:
        """Push the device bundle unless the device has this very one already."""
        remote = f"{self.config.workdir}/bundle"
        identity = bundle.identity()
        have = self.link.shell(f"cat {_q(remote + '/.edgeprune-bundle')} 2>/dev/null; true",
                               timeout=self.config.call_timeout_s).stdout.decode(errors="replace").strip()
        if have == identity:
            return
        self.link.shell(f"rm -rf {_q(remote)}", timeout=self.config.call_timeout_s)
        push_tree = getattr(self.link, "push_tree", None)
        if push_tree is None:
            raise DeviceError(f"{self.spec}: a device bundle can only be pushed over adb; "
                              "give the board a python3 (EDGEPRUNE_DEVICE_PYTHON)")
        push_tree(bundle.local, remote, timeout=max(self.config.push_timeout_s, 3600))
        self._write_text(f"{remote}/.edgeprune-bundle", identity)  # last: a cut push is pushed again

    def _sensor_script(self) -> str:
        """Link the energy sensor into the work folder as `sensor`, and say which kind it is.

        Jobs name it by that relative path, so no job file holds an absolute device path."""
        link = _q(self.config.workdir + "/sensor")
        if not self.config.use_sensor:
            return f"rm -f {link}"
        if self.config.sensor is not None:
            kind, path = self.config.sensor
            files = {"battery": [f"{path}/current_now", f"{path}/voltage_now"]}.get(kind, [path])
            readable = " && ".join(f"[ -r {_q(f)} ]" for f in files)
            return f"if {readable}; then ln -sfn {_q(path)} {link} && echo sensor {_q(kind)}; else rm -f {link}; fi"
        return discover_sensor_script(link)

    def _write_text(self, remote: str, text: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "data"
            local.write_text(text)
            self.link.push(local, remote, timeout=self.config.call_timeout_s)

    def _leftovers(self) -> tuple[dict[str, dict], list[str]]:
        """Results of earlier jobs that never finished (their runners are stopped first, so
        they do not run beside this job and skew its timings)."""
        j = _q(self._jobs)
        script = (f"for p in {j}/*/pid; do [ -r \"$p\" ] && kill \"$(cat \"$p\")\" 2>/dev/null; done; "
                  f"for d in {j}/*/; do [ -d \"$d\" ] && echo \"@@job $d\" && cat \"$d/results.jsonl\" 2>/dev/null; done; true")
        out = self.link.shell(script, timeout=self.config.call_timeout_s)
        found: dict[str, dict] = {}
        jobs: list[str] = []
        for line in out.stdout.decode(errors="replace").splitlines():
            if line.startswith("@@job "):
                jobs.append(line[6:].rstrip("/"))
                continue
            rec = _parse_line(line)
            if rec is not None:
                found[rec["id"]] = rec
        return found, jobs

    def _push_inputs(self, tasks, shas: dict[str, str], input_shas: dict[str, str]) -> None:
        wanted = {}
        for t in tasks:
            wanted[_model_name(t, shas)] = Path(t.model)
            if t.id in input_shas:
                wanted[f"{input_shas[t.id]}.npz"] = Path(t.inputs)
        out = self.link.shell(f"ls {_q(self._models)}", timeout=self.config.call_timeout_s, check=False)
        present = set(out.stdout.decode(errors="replace").split())
        moves = []
        for name, local in wanted.items():
            if name not in present:
                # push under a temporary name, then rename: a push cut by a disconnect leaves
                # no truncated model that a later job would take for a good one
                part = f"{self._models}/.{name}.part"
                self.link.push(local, part, timeout=self.config.push_timeout_s)
                moves.append(f"mv -f {_q(part, self._models + '/' + name)}")
        for start in range(0, len(moves), 50):  # a few calls, each well under ARG_MAX
            self.link.shell(" && ".join(moves[start:start + 50]), timeout=self.config.call_timeout_s)

    def _push_job(self, job: str, todo: dict[str, BenchTask], shas, input_shas) -> None:
        entries = []
        for key, t in todo.items():
            entry = {"id": key, "backend": t.backend, "model": f"../../models/{_model_name(t, shas)}",
                     "inputs": f"../../models/{input_shas[t.id]}.npz" if t.id in input_shas else "random",
                     "threads": t.threads, "clock": t.clock, "warmup": t.warmup, "repeats": t.repeats,
                     "min_seconds": t.min_seconds, "options": t.options, **timing_fields(t)}
            if t.cores is not None:
                entry["cores"] = list(t.cores)
            if t.save_outputs:
                entry["save_outputs"] = f"out/{key}.npz"
            if self.sensor_kind:
                entry["energy"] = {"kind": self.sensor_kind, "path": "../../sensor"}
            entries.append(entry)
        job_json = {"version": 1, "results": "results.jsonl", "tasks": entries}
        self.link.shell(f"mkdir -p {_q(job + '/out')}", timeout=self.config.call_timeout_s)
        self._write_text(f"{job}/job.json", json.dumps(job_json, indent=1))

    def _runner_script(self, job: str, todo: dict[str, BenchTask]) -> str:
        cores = self.config.cores
        if cores is None:
            wanted = sorted({c for t in todo.values() for c in (t.cores or [])})
            cores = wanted or None
        pin = f"taskset {format(sum(1 << c for c in cores), 'x')} " if cores else ""
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.config.env.items())
        # the pid file lets a later session stop a runner whose link was lost; paths inside
        # the job are relative to its folder (jobs/ID), so the work folder may be relative too
        return (f"cd {_q(job)} && {{ [ -r pid ] && kill \"$(cat pid)\" 2>/dev/null; true; }} && echo $$ > pid && {'export ' + env + ' && ' if env else ''}exec {pin}"
                f"{_q(*self.config.python)} ../../runtime/runner.py job.json")

    def _run_job(self, job: str, todo: dict[str, BenchTask], deliver) -> None:
        state_script = self._state_script()
        poll = f"tail -c +{{offset}} {_q(job + '/results.jsonl')} 2>/dev/null; echo {_STATE_MARK}; {state_script}"
        offset = 0
        pending = dict(todo)
        script = self._runner_script(job, todo)
        respawns = list(Retry.from_env().delays())
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = self.link.spawn(script, out, err)
            last_progress = time.monotonic()
            try:
                while True:
                    finished = proc.poll() is not None
                    reply = self.link.shell(poll.format(offset=offset + 1), timeout=self.config.call_timeout_s)
                    text = reply.stdout
                    mark = text.rfind(_STATE_MARK.encode())
                    new, state_text = (text[:mark], text[mark:]) if mark >= 0 else (text, b"")
                    complete = new[: new.rfind(b"\n") + 1]  # a half-written last line waits
                    offset += len(complete)
                    state = parse_state(state_text.decode(errors="replace"))
                    for line in complete.decode(errors="replace").splitlines():
                        rec = _parse_line(line)
                        if rec is not None and rec["id"] in pending:
                            task = pending.pop(rec["id"])
                            deliver(self._to_result(task, rec, state, job))
                            last_progress = time.monotonic()
                    if not pending:
                        break
                    if finished:
                        err.seek(0)
                        stderr = err.read()
                        if self.link.is_link_failure(proc.returncode, stderr) and respawns:
                            # the link dropped, not the runner: start it again; it skips what
                            # it finished and stops the runner it replaces (pid file)
                            time.sleep(respawns.pop(0))
                            err.seek(0)
                            err.truncate()
                            proc = self.link.spawn(script, out, err)
                            continue
                        raise DeviceError(self._runner_failure(proc.returncode, stderr, len(pending)))
                    if time.monotonic() - last_progress > self.config.task_timeout_s:
                        raise DeviceError(f"{self.spec}: no result from the runner for "
                                          f"{self.config.task_timeout_s:g}s")
                    time.sleep(self.config.poll_s)
                proc.wait(timeout=self.config.call_timeout_s)
            except subprocess.TimeoutExpired:
                raise DeviceError(f"{self.spec}: the runner did not exit after its last result") from None
            finally:
                _stop(proc)

    def _runner_failure(self, code: int, stderr: bytes, missing: int) -> str:
        lines = [ln.strip() for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
        said = lines[-1] if lines else f"exit status {code}"
        if self.link.is_link_failure(code, stderr):
            return f"{self.spec}: lost the device while measuring ({said})"
        if code == 127:
            python = "set the profile's [reach] python (or EDGEPRUNE_DEVICE_PYTHON) to a python3 the device has"
            if getattr(self.link, "push_tree", None) is None:   # the bundle is pushed over adb only
                return f"{self.spec}: no Python on the device ({said}); {python}"
            return (f"{self.spec}: no Python on the device ({said}); build the device bundle with "
                    f"`edgeprune bundle -o DIR` and point the profile's [reach] bundle (or "
                    f"EDGEPRUNE_DEVICE_BUNDLE) at DIR, which is pushed once and started through its "
                    f"own loader; or {python}")
        return f"{self.spec}: the runner stopped with {missing} task(s) left ({said})"

    def _to_result(self, task: BenchTask, rec: dict, state: dict, job: str | None) -> TaskResult:
        if not rec.get("ok"):
            return TaskResult(id=task.id, ok=False, error=str(rec.get("error", "failed on the device")),
                              state=state)
        outputs = None
        if task.save_outputs and rec.get("outputs") and job is not None:
            outputs = self._pull_npz(f"{job}/{rec['outputs']}")
        return TaskResult(id=task.id, ok=True, median_ms=rec.get("median_ms"), p90_ms=rec.get("p90_ms"),
                          count=int(rec.get("count", 0)), energy_mj=rec.get("energy_mj"),
                          energy_source=rec.get("energy_source"), energy_note=rec.get("energy_note"),
                      outputs=outputs, converged=rec.get("converged"),
                          state={**(rec.get("state") or {}), **state})

    def _pull_npz(self, remote: str) -> dict[str, Any]:
        import numpy as np

        data = self.link.pull(remote, timeout=self.config.push_timeout_s)
        with np.load(io.BytesIO(data)) as npz:
            return {name: npz[name] for name in npz.files}

    def _state_script(self) -> str:
        # globs stay unquoted so the device's shell expands them; they contain no user data
        return f"grep -H . {' '.join(STATE_GLOBS)} 2>/dev/null; true"


def _model_name(task: BenchTask, shas: dict[str, str]) -> str:
    """Content-addressed, keeping the suffix runtimes dispatch on (.onnx, .ort, .so, .tar)."""
    return f"{shas[task.id]}{Path(task.model).suffix}"


def _parse_line(line: str) -> dict | None:
    try:
        rec = json.loads(line)
    except ValueError:
        return None  # a line cut by a kill
    if isinstance(rec, dict) and isinstance(rec.get("id"), str):
        return rec
    return None


def _stop(proc: subprocess.Popen) -> None:
    """End the local half of the runner's session (the adb/ssh client and its children)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
