#!/usr/bin/env python3
"""The device-side runner: `python runner.py JOB.json` (see PROTOCOL.md).

Runs on the host, over adb, over ssh and under emulation, so it imports only the standard
library, numpy and the runtime a task asks for (dispatched to `backend_<name>.py` beside this
file). It never imports edgeprune. One line per finished task is appended to the results
file and flushed at once: a runner killed midway keeps everything it finished, and a task
whose id already has a line is skipped (what `--resume` rests on).
"""

from __future__ import annotations

import glob
import importlib
import json
import os
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

MAX_REPEATS = 100000
MAX_SECONDS = 30.0  # one task never times longer than this, whatever min_seconds asks
SENSOR_MIN_SECONDS = 0.2  # an energy sensor is read over at least this long (RAPL, battery)
REFERENCE_RUNS = 8        # runs of a task's reference model before it and again after it


# ---------------------------------------------------------------- device state
def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def device_state(root: str = "/") -> dict:
    """Governor, current frequencies and thermal readings; whatever is readable."""
    # by CPU number (cpu10 after cpu9); "cpufreq" itself contains "cpu"
    cpus = sorted(glob.glob(os.path.join(root, "sys/devices/system/cpu/cpu[0-9]*/cpufreq")),
                  key=lambda p: int(os.path.basename(os.path.dirname(p))[3:]))
    state: dict = {}
    governors = [g for g in (_read(os.path.join(c, "scaling_governor")) for c in cpus) if g]
    if governors:
        state["governor"] = governors[0] if len(set(governors)) == 1 else governors
    freqs = [int(f) for f in (_read(os.path.join(c, "scaling_cur_freq")) for c in cpus) if f and f.isdigit()]
    if freqs:
        state["freq_khz"] = freqs
    temps = []
    for zone in sorted(glob.glob(os.path.join(root, "sys/class/thermal/thermal_zone*/temp"))):
        t = _read(zone)
        if t and t.lstrip("-").isdigit():
            temps.append(int(t))
    if temps:
        state["thermal_mc"] = temps
    return state


# ---------------------------------------------------------------- energy sensors
class _Sampler:
    """Reads an energy sensor across the timed loop. Kinds:
    rapl    - a powercap `energy_uj` counter (microjoules, wraps at max_energy_range_uj)
    battery - Android `current_now` (uA) x `voltage_now` (uV) in a power_supply folder, sampled
    hwmon   - a hwmon/INA `power*_input` file (microwatts), sampled
    """

    PERIOD = 0.01

    def __init__(self, spec: dict):
        self.kind = spec.get("kind")
        self.path = spec.get("path")
        if self.kind not in ("rapl", "battery", "hwmon"):
            raise ValueError(f"unknown energy sensor kind '{self.kind}'")
        self._joules = 0.0
        self._stop = threading.Event()
        self._thread = None

    def unavailable(self) -> str | None:
        """Why this sensor cannot measure the model's energy now (None: it can). A battery
        measures the phone's draw only while it discharges: on a charger its current is the
        charge flowing in."""
        if self.kind == "battery":
            status = (_read(os.path.join(self.path, "status")) or "").strip()
            if status and status.lower() != "discharging":
                return f"battery {status.lower()}: energy is measured only while the battery discharges"
        return None

    def _power_w(self) -> float:
        if self.kind == "battery":
            cur = float(_read(os.path.join(self.path, "current_now")) or "nan")
            volt = float(_read(os.path.join(self.path, "voltage_now")) or "nan")
            # while discharging, phones report the current as negative or positive by vendor
            return abs(cur) * 1e-6 * volt * 1e-6
        return float(_read(self.path) or "nan") * 1e-6

    def _loop(self):
        last_t, last_p = time.perf_counter(), self._power_w()
        while not self._stop.wait(self.PERIOD):
            t, p = time.perf_counter(), self._power_w()
            self._joules += 0.5 * (p + last_p) * (t - last_t)  # trapezoid
            last_t, last_p = t, p
        t, p = time.perf_counter(), self._power_w()
        self._joules += 0.5 * (p + last_p) * (t - last_t)

    def start(self):
        if self.kind == "rapl":
            self._start_uj = int(_read(self.path))
        else:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()

    def stop_joules(self) -> float:
        if self.kind == "rapl":
            end = int(_read(self.path))
            delta = end - self._start_uj
            if delta < 0:  # the counter wrapped
                wrap = _read(os.path.join(os.path.dirname(self.path), "max_energy_range_uj"))
                delta += int(wrap) if wrap else 0
            return delta * 1e-6
        self._stop.set()
        self._thread.join()
        return self._joules


# ---------------------------------------------------------------- timing
def _percentile(sorted_vals: list[float], q: float) -> float:
    if not sorted_vals:
        return float("nan")
    k = (len(sorted_vals) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (k - lo)


def median_interval(sorted_vals: list[float], z: float = 1.96) -> tuple[float, float]:
    """A distribution-free 95% confidence interval of the median: the order statistics at
    ranks n/2 -+ z*sqrt(n)/2 (the binomial count of samples below the median). Timings are
    skewed (interrupts, cache misses add, nothing subtracts), so no normal model of them."""
    n = len(sorted_vals)
    half = z * n ** 0.5 / 2
    lo = max(0, int(n / 2 - half))
    hi = min(n - 1, int(-(-(n / 2 + half) // 1)))
    return sorted_vals[lo], sorted_vals[hi]


def _time_until_known(session, feeds, clock, repeats, min_seconds, precision, max_seconds):
    """Wall and CPU times (ms) of runs: at least `repeats` and `min_seconds`, then on until the
    median's 95% interval is within ±precision of it (0: stop there), at most max_seconds."""
    wall, cpu = [], []
    times = cpu if clock == "cpu" else wall
    next_check = 0
    t_start = time.perf_counter()
    while True:
        c0, t0 = time.thread_time(), time.perf_counter()
        session.run(feeds)
        t1, c1 = time.perf_counter(), time.thread_time()
        wall.append((t1 - t0) * 1e3)
        cpu.append((c1 - c0) * 1e3)
        elapsed = t1 - t_start
        if len(wall) >= MAX_REPEATS or elapsed >= max_seconds:
            break
        if len(wall) < repeats or elapsed < min_seconds:
            continue
        if not precision:
            break
        if len(times) >= next_check:
            # sorting is O(n log n): look again once the sample has grown by an eighth
            ordered = sorted(times)
            lo, hi = median_interval(ordered)
            if hi - lo <= 2 * precision * _percentile(ordered, 0.5):
                break
            next_check = len(times) + max(1, len(times) // 8)
    return wall, cpu


_REFERENCES: dict = {}   # reference model path -> (session, feeds), loaded once per runner


def _reference(task: dict, job_dir: Path, np):
    """The task's reference model, timed just before and after it: on a shared machine the
    other core's load and the clock frequency change the speed of everything for seconds at a
    time, and the reference's time says by how much (the caller divides it out)."""
    path = task.get("reference")
    if not path:
        return None
    path = Path(path) if Path(path).is_absolute() else job_dir / path
    if str(path) not in _REFERENCES:
        backend = importlib.import_module(f"backend_{task.get('backend', 'ort')}")
        session = backend.load(str(path), threads=int(task.get("threads", 1)), options=task.get("options") or {})
        feeds = _inputs({"inputs": "random"}, session, job_dir, np)
        for _ in range(3):
            session.run(feeds)
        _REFERENCES[str(path)] = (session, feeds)
    return _REFERENCES[str(path)]


def _time_runs(session, feeds, clock: str, n: int) -> list[float]:
    now = time.thread_time if clock == "cpu" else time.perf_counter
    out = []
    for _ in range(n):
        t0 = now()
        session.run(feeds)
        out.append((now() - t0) * 1e3)
    return out


def _pin(task: dict) -> None:
    cores = task.get("cores")
    if cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(int(c) for c in cores))


def run_task(task: dict, job_dir: Path) -> dict:
    import numpy as np

    backend = importlib.import_module(f"backend_{task.get('backend', 'ort')}")
    _pin(task)
    model = Path(task["model"])
    if not model.is_absolute():
        model = job_dir / model
    session = backend.load(str(model), threads=int(task.get("threads", 1)),
                           options=task.get("options") or {})
    feeds = _inputs(task, session, job_dir, np)
    for _ in range(int(task.get("warmup", 5))):
        session.run(feeds)
    repeats = int(task.get("repeats", 30))
    min_seconds = float(task.get("min_seconds", 0.2))
    sampler = _Sampler(task["energy"]) if task.get("energy") else None
    energy_note = sampler.unavailable() if sampler else None
    if energy_note:
        sampler = None
    if sampler:
        # a sensor read over a few milliseconds says nothing: time at least its own window
        min_seconds = max(min_seconds, SENSOR_MIN_SECONDS)
    # "cpu" times the calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID): on a shared machine
    # it leaves out the time the thread sat preempted. Valid only when the runtime computes on
    # the calling thread, i.e. with one intra-op thread.
    clock = task.get("clock", "wall")
    if clock not in ("wall", "cpu"):
        raise ValueError(f"unknown clock '{clock}'")
    if clock == "cpu" and int(task.get("threads", 1)) != 1:
        raise ValueError("clock 'cpu' needs threads == 1")
    precision = float(task.get("precision") or 0.0)
    max_seconds = min(float(task.get("max_seconds") or MAX_SECONDS), MAX_SECONDS)
    reference = _reference(task, job_dir, np)
    ref_times = _time_runs(*reference, clock, REFERENCE_RUNS) if reference else []
    if sampler:
        sampler.start()
    wall, cpu = _time_until_known(session, feeds, clock, repeats, min_seconds, precision, max_seconds)
    times = cpu if clock == "cpu" else wall
    if reference:
        ref_times += _time_runs(*reference, clock, REFERENCE_RUNS)
    joules = sampler.stop_joules() if sampler else None
    ordered = sorted(times)
    result = {"id": task["id"], "ok": True, "clock": clock,
              "median_ms": _percentile(ordered, 0.5), "p90_ms": _percentile(ordered, 0.9),
              "mean_ms": sum(times) / len(times), "count": len(times), "times_ms": times,
              "wall_median_ms": _percentile(sorted(wall), 0.5),
              "cpu_median_ms": _percentile(sorted(cpu), 0.5),
              "state": device_state()}
    if ref_times:
        result["reference_ms"] = _percentile(sorted(ref_times), 0.5)
    if precision:
        lo, hi = median_interval(ordered)
        result["median_ci_ms"] = [lo, hi]
        result["converged"] = hi - lo <= 2 * precision * result["median_ms"]
    if joules is not None and joules == joules:  # NaN when the sensor could not be read
        result["energy_mj"] = joules * 1e3 / len(times)
        result["energy_source"] = sampler.kind
    elif energy_note:
        result["energy_note"] = energy_note
    if task.get("save_outputs"):
        out = Path(task["save_outputs"])
        if not out.is_absolute():
            out = job_dir / out
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(out, **session.run(feeds))
        result["outputs"] = task["save_outputs"]
    return result


def _inputs(task: dict, session, job_dir: Path, np) -> dict:
    spec = task.get("inputs", "random")
    given = task.get("input_shapes") or {}
    if spec == "random":
        rng = np.random.default_rng(0)
        feeds = {}
        for name, shape, dtype in session.input_specs():
            shape = _static(name, shape, given.get(name))
            dt = np.dtype(dtype)
            if dt.kind == "f":
                feeds[name] = rng.standard_normal(shape).astype(dt)
            else:
                feeds[name] = rng.integers(0, 2, size=shape).astype(dt)
        return feeds
    path = Path(spec)
    if not path.is_absolute():
        path = job_dir / path
    feeds = {}
    with np.load(path) as data:
        for name, shape, _ in session.input_specs():
            array = data[name]
            batch = _static(name, shape, given.get(name), data_shape=array.shape)[0]
            feeds[name] = array[:1] if array.shape[0] != batch else array
    return feeds


def _static(name: str, shape, given=None, data_shape=None) -> list:
    """The shape to feed: `given` (the task's input_shapes) fills dynamic (None) dims and must
    agree with static ones; else a dynamic batch is 1 and other dynamic dims come from the
    data, or are refused naming them (random inputs cannot guess an image size)."""
    if given is not None:
        given = [int(d) for d in given]
        if len(given) != len(shape) or any(s is not None and s != g for s, g in zip(shape, given)):
            raise ValueError(f"input '{name}' has shape {_text(shape)}; input_shapes gives {_text(given)}")
        return given
    missing = [k for k, s in enumerate(shape) if s is None and k > 0 and data_shape is None]
    if missing:
        raise ValueError(f"input '{name}' has shape {_text(shape)}: dynamic dims at axes "
                         f"{', '.join(map(str, missing))} need the task's input_shapes")
    return [1 if s is None and k == 0 else (data_shape[k] if s is None else s) for k, s in enumerate(shape)]


def _text(shape) -> str:
    return "x".join("?" if s is None else str(s) for s in shape)


def _done_ids(results: Path) -> set[str]:
    done = set()
    if results.exists():
        for line in results.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a line cut by a kill: that task is simply run again
            if isinstance(rec, dict) and "id" in rec:
                done.add(rec["id"])
    return done


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(json.dumps({"error": "usage: runner.py JOB.json"}))
        return 2
    job_path = Path(argv[0]).resolve()
    job = json.loads(job_path.read_text())
    if job.get("version") != 1:
        print(json.dumps({"error": f"unsupported job version {job.get('version')}"}))
        return 2
    results = Path(job.get("results", "results.jsonl"))
    if not results.is_absolute():
        results = job_path.parent / results
    done = _done_ids(results)
    n_done = n_failed = 0
    with open(results, "a") as out:
        for task in job["tasks"]:
            if task["id"] in done:
                continue
            try:
                rec = run_task(task, job_path.parent)
                n_done += 1
            except Exception as e:  # one failed task never stops the others
                msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
                rec = {"id": task["id"], "ok": False, "error": f"{type(e).__name__}: {msg}"[:500]}
                n_failed += 1
            out.write(json.dumps(rec) + "\n")
            out.flush()
            os.fsync(out.fileno())
    print(json.dumps({"done": n_done, "failed": n_failed}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
