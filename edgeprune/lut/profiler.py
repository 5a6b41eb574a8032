"""Measuring a LUT on a device: the entries a model needs, coarse first, refined where
latency is not linear between neighbours, saved as they come (at least every SAVE_EVERY_S).

Every decision (which grid points, where to refine) is a pure function of the entries
already in the LUT, so a resumed run walks the same path and measures only what is missing.
"""

from __future__ import annotations

import datetime
import hashlib
import math
import statistics
import tempfile
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from ..devices.base import BenchTask, Device, TaskResult
from ..errors import DeviceError
from ..frontend.links import Links
from .layers import Layer, Signature, model_layers
from .microbench import micro_model_file
from .predict import structure_key
from .reference import nominal_of, normalized, reference_model
from .table import LutWriter

COARSE_POINTS = 4       # per axis, before refinement
REL_TOL = 0.04          # refine where the midpoint is off the straight line by more than this ...
NOISE_WEIGHT = 0.5      # ... plus this share of the neighbours' (p90 − median) spread
# knots per axis at most (coarse ones included): ResNet-18's 7x7 convs with 512 channels took
# 185 entries for one signature when every bend of 4% was refined, on a host whose timings
# of the same entry differ by 5% from one minute to the next
MAX_KNOTS = 7
WHOLE_MODEL_PASSES = 3  # a whole model's timing: the middle of this many interleaved passes
SAVE_EVERY_S = 2.0      # measurements reach the LUT file at least this often (what a kill can lose)


@dataclass
class Settings:
    backend: str = "ort"
    threads: int = 1
    cores: list[int] | None = None
    warmup: int = 3
    repeats: int = 15        # at least this many timed runs ...
    min_seconds: float = 0.15  # ... and this long; then on until the median is known to ±precision
    # half-width of the median's 95% interval, relative; 0 (a profile without the key, e.g. the
    # tests' short-timing ones): stop at repeats and min_seconds
    precision: float = 0.0
    max_seconds: float = 1.0  # per entry, whatever the precision reached (the run records it)
    reference: bool = False  # time a fixed reference model beside every task (see normalized_ms)
    options: dict = field(default_factory=dict)
    batch: int = 64          # tasks per runner process
    clock: str = "wall"      # "cpu" on a shared host: thread CPU time (threads == 1)
    passes: int = 1          # runs per entry, in separate passes (the fastest counts)
    tvm_target: object = None   # backends.base.TargetSpec, for backend "tvm"
    tvm_trials: int = 0      # MetaSchedule trials per micro-model (0: TVM's untuned lowering)
    runtime: object = None   # backends.runtime.RuntimeConfig every task runs under


    def task(self, id: str, model: Path, options: dict, whole_model: bool = False,
             reference: Path | None = None) -> BenchTask:
        """How one entry (or, `whole_model`, one whole model for the calibration) is timed."""
        if whole_model:
            # the whole-model terms are fitted from a handful of timings: each to half the
            # precision of an entry, since every prediction of the model carries its error
            return BenchTask(id=id, model=model, backend=self.backend, threads=self.threads, cores=self.cores,
                             warmup=self.warmup + 2, repeats=max(self.repeats, 20),
                             min_seconds=max(0.3, self.min_seconds), options=options, clock=self.clock,
                             precision=self.precision / 2, max_seconds=max(2.0, self.max_seconds),
                             reference=reference)
        return BenchTask(id=id, model=model, backend=self.backend, threads=self.threads, cores=self.cores,
                         warmup=self.warmup, repeats=self.repeats, min_seconds=self.min_seconds,
                         options=options, clock=self.clock, precision=self.precision,
                         max_seconds=self.max_seconds, reference=reference)


Progress = Callable[[int, int], None]   # (newly done, new total)


@dataclass
class SigPlan:
    """One signature's grid: candidate channel counts per axis and the coarse subset."""
    signature: Signature
    cin_candidates: list[int]
    cout_candidates: list[int]
    dense: tuple[tuple[int, int], ...] = ()   # the layers' own (c_in, c_out): always measured

    @property
    def depthwise(self) -> bool:
        return self.signature.kind == "dwconv"

    def coarse(self, values: list[int], dense: set[int]) -> list[int]:
        if len(values) <= COARSE_POINTS:
            return list(values)
        idx = {round(i * (len(values) - 1) / (COARSE_POINTS - 1)) for i in range(COARSE_POINTS)}
        return sorted({values[i] for i in idx} | (dense & set(values)))


def _axis_candidates(dense_values: list[int], step: int, fixed: bool) -> list[int]:
    if fixed:
        return sorted(set(dense_values))
    top = max(dense_values)
    return sorted(set(range(step, top + 1, step)) | set(dense_values))


def grid_key(plan: SigPlan) -> str:
    """A signature's grid: the signature and the candidate counts on each axis."""
    axes = ",".join(map(str, plan.cin_candidates)) + "/" + ",".join(map(str, plan.cout_candidates))
    dense = ",".join(f"{ci}x{co}" for ci, co in sorted(plan.dense))
    return f"{plan.signature.key}|{hashlib.sha256((axes + '|' + dense).encode()).hexdigest()[:16]}"


def plan_signatures(layers: list[Layer], step: int, frozen: dict[str, tuple[bool, bool]]) -> list[SigPlan]:
    by_sig: dict[str, list[Layer]] = {}
    for l in layers:
        by_sig.setdefault(l.signature.key, []).append(l)
    plans = []
    for ls in by_sig.values():
        sig = ls[0].signature
        # a grouped (non-depthwise) conv keeps its channels: rewrite rules leave it alone
        grouped = sig.kind == "conv" and sig.groups > 1
        in_fixed = grouped or all(frozen.get(l.node, (False, False))[0] for l in ls)
        out_fixed = grouped or all(frozen.get(l.node, (False, False))[1] for l in ls)
        if sig.kind == "dwconv":
            in_fixed = out_fixed = in_fixed or out_fixed
        plans.append(SigPlan(sig, _axis_candidates([l.c_in for l in ls], step, in_fixed),
                             _axis_candidates([l.c_out for l in ls], step, out_fixed),
                             tuple((l.c_in, l.c_out) for l in ls)))
    return plans


def frozen_axes(model, layers: list[Layer]) -> dict[str, tuple[bool, bool]]:
    """Which channel axes of each layer cannot change: the input of a layer fed by the
    model's input (image channels) and the output of a layer that reaches the model's
    output (classes) without another layer between."""
    proto = getattr(model, "proto", model)
    g = proto.graph
    layer_nodes = {l.node for l in layers}
    links = Links(g)
    producers, consumers = links.producers, links.consumers
    inits = {t.name for t in g.initializer}
    graph_in = {i.name for i in g.input} - inits
    graph_out = {o.name for o in g.output}

    def from_input(tensor: str, seen: set) -> bool:
        if tensor in graph_in:
            return True
        p = producers.get(tensor)
        if p is None or p.name in layer_nodes or p.name in seen:
            return False
        seen.add(p.name)
        return any(from_input(i, seen) for i in p.input if i and i not in inits)

    def to_output(tensor: str, seen: set) -> bool:
        if tensor in graph_out:
            return True
        for c in consumers.get(tensor, []):
            if c.name in layer_nodes or c.name in seen:
                continue
            seen.add(c.name)
            if any(to_output(o, seen) for o in c.output):
                return True
        return False

    node_by_name = {n.name: n for n in g.node}
    out = {}
    for l in layers:
        n = node_by_name[l.node]
        last = n
        for name in l.fused:
            last = node_by_name[name]
        out[l.node] = (from_input(n.input[0], set()), to_output(last.output[0], set()))
    return out


class Profiler:
    def __init__(self, device: Device, writer: LutWriter, settings: Settings,
                 progress: Progress | None = None, workdir: Path | None = None, fresh: bool = False):
        """`fresh`: measure every entry this run needs again (a new run record, merged with the
        ones already in the LUT); otherwise (resume) entries already in the LUT are kept."""
        self.device, self.writer, self.settings = device, writer, settings
        self.progress = progress or (lambda done, total: None)
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="edgeprune-micro-")
        self.workdir = Path(workdir) if workdir else Path(self._tmp.name)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.run_id = uuid.uuid4().hex[:12]
        self.fresh = fresh
        self.measured = 0      # entries measured by this run
        self._reference = reference_model(settings, self.workdir)
        self._reused: set = set()   # entries found already in the LUT

    @property
    def reused(self) -> int:
        return len(self._reused)

    def _have(self, key, runs: int = 1, measured: bool = False) -> bool:
        e = self.writer.lut.get(*key)
        if e is None:
            return False
        mine = [r for r in e.runs if (not self.fresh or r.get("run") == self.run_id)
                and not (measured and r.get("transferred"))]
        return len(mine) >= runs

    # ------------------------------------------------------------- points
    def _value(self, sig: Signature, c_in: int, c_out: int):
        e = self.writer.lut.get(sig.key, c_in, c_out)
        return None if e is None else (e.median_ms, e.p90_ms)

    def ensure(self, points: list[tuple[Signature, int, int]], runs: int = 1, measured: bool = False) -> None:
        """Measure the points that have fewer than `runs` runs in the LUT (each saved the moment
        it is measured); `measured`: values transferred from another device do not count."""
        todo, seen = [], set()
        for sig, ci, co in points:
            key = (sig.key, ci, co)
            if key in seen:
                continue
            seen.add(key)
            if not self._have(key, runs, measured):
                todo.append((sig, ci, co))
            elif not any(r.get("run") == self.run_id for r in self.writer.lut.get(*key).runs):
                self._reused.add(key)
        self.progress(0, len(todo))
        for start in range(0, len(todo), self.settings.batch):
            self._measure_batch(todo[start:start + self.settings.batch])

    def _task(self, sig: Signature, ci: int, co: int) -> BenchTask:
        model, options = self._runnable(micro_model_file(sig, ci, co, self.workdir))
        return self.settings.task(f"{sig.key}|{ci}x{co}", model, options, reference=self._reference)

    def normalized(self, r: TaskResult) -> tuple[float, float]:
        """(median, p90) of a result at the LUT's nominal speed (reference.py)."""
        return normalized(r, self.writer.lut.header.get("reference_ms"))

    def _runnable(self, onnx_path: Path) -> tuple[Path, dict]:
        return runnable(self.settings, onnx_path)

    def _measure_batch(self, batch: list[tuple[Signature, int, int]]) -> None:
        by_id = {}
        tasks = []
        for sig, ci, co in batch:
            t = self._task(sig, ci, co)
            by_id[t.id] = (sig, ci, co)
            tasks.append(t)

        def save(r: TaskResult) -> None:
            if not r.ok:
                raise DeviceError(f"{self.device.spec}: measuring {r.id} failed: {r.error}")
            sig, ci, co = by_id[r.id]
            self.writer.add(sig, ci, co, _run_record(r, self.run_id, self.normalized(r)))
            self.measured += 1
            self.progress(1, 0)

        with self.writer.deferred(SAVE_EVERY_S):
            self.device.measure(tasks, on_result=save)

    # ------------------------------------------------------------- grids
    def profile(self, plans: list[SigPlan]) -> None:
        """Coarse grid of every signature, then rounds of refinement until linear. A grid that
        an earlier run refined to the end is not refined again (which points refinement picks
        depends on the values it saw; runs merged from concurrent writers differ): a resume
        measures what that grid is missing, and nothing when the LUT holds it all."""
        states, touched = [], []
        for p in plans:
            done = None if self.fresh else self.writer.lut.grids.get(grid_key(p))
            if done:
                touched += [(p.signature, ci, co) for ci, co in done["points"]]
            else:
                states.append(_GridState(p))
        self.ensure(touched)
        while states:
            grid = [pt for s in states for pt in s.visit(s.grid_points())]
            self.ensure(grid)
            probes = [pt for s in states for pt in s.visit(s.probes())]
            touched += grid + probes
            if not probes:
                break
            self.ensure(probes)
            for s in states:
                s.decide(self._value)
        # later passes, in reverse order so that a point's runs lie apart in time
        for runs in range(2, self.settings.passes + 1):
            self.ensure(touched[::-1], runs)
        with self.writer.deferred(SAVE_EVERY_S):
            for s in states:
                self.writer.set_grid(grid_key(s.plan), [(ci, co) for _, ci, co in s.touched])

    def profile_model(self, model, name: str = "model") -> list[Layer]:
        layers = model_layers(model)
        self.profile(plan_signatures(layers, self.writer.lut.channel_step, frozen_axes(model, layers)))
        self.measure_rest(model, layers, name)
        return layers

    def measure_rest(self, model, layers: list[Layer], name: str, measure_transferred: bool = False) -> dict:
        """The model's whole-model terms (see calibrate.py), measured once per structure.
        `measure_transferred`: fitted against measured entries only (refine.py), never against
        values transferred from another device (transfer.py)."""
        from .calibrate import VERSION, calibrate_model

        key = structure_key(model)
        have = self.writer.lut.models.get(key)
        # terms resting on transferred values: scaled from the source (no "run": never timed
        # here) are measured again; fitted here against transferred entries, when asked to
        current = have is not None and have.get("calibration_version") == VERSION and \
            (not have.get("transferred") or (not measure_transferred and "run" in have))
        if current and (not self.fresh or have.get("run") == self.run_id):
            return have
        self.progress(0, 1)
        record = calibrate_model(self, model, layers, name, measure_transferred)
        record.update(at=utc_now(), run=self.run_id)
        self.writer.set_model(key, record)
        self.progress(1, 0)
        return record

    def whole_model_task(self, proto, tag: str) -> BenchTask:
        path = self.workdir / f"model-{tag}.onnx"
        path.write_bytes(proto.SerializeToString())
        return self.model_file_task(path, tag)

    def time_whole_models(self, tasks: list[BenchTask]) -> dict[str, TaskResult]:
        """Each whole model timed in WHOLE_MODEL_PASSES interleaved passes (or the device's
        `passes`, if more); the pass with the middle median (at the nominal speed) counts. One
        pass of a whole model on a shared host was off by up to 20%, in either direction."""
        passes = max(WHOLE_MODEL_PASSES, self.settings.passes)
        by_task: dict[str, list[TaskResult]] = {}
        for r in self.device.measure([replace(t, id=f"{t.id}|{k}") for k in range(passes) for t in tasks]):
            if not r.ok:
                raise DeviceError(f"{self.device.spec}: timing the whole model failed: {r.error}")
            by_task.setdefault(r.id.rsplit("|", 1)[0], []).append(r)
        return {t.id: sorted(by_task[t.id], key=lambda r: self.normalized(r)[0])[passes // 2] for t in tasks}

    def model_file_task(self, path: Path, tag: str) -> BenchTask:
        """A whole model timed as the calibration times one (id `model|tag`)."""
        model, options = self._runnable(path)
        return self.settings.task(f"model|{tag}", model, options, whole_model=True, reference=self._reference)


class _GridState:
    """A signature's tensor grid as it is refined: axes, and the intervals still to test."""

    def __init__(self, plan: SigPlan):
        self.plan = plan
        self.cin = plan.coarse(plan.cin_candidates, {ci for ci, _ in plan.dense})
        self.cout = plan.coarse(plan.cout_candidates, {co for _, co in plan.dense})
        if plan.depthwise:
            self.cin = self.cout
        self.pending = [("out", a, b) for a, b in zip(self.cout, self.cout[1:])]
        if not plan.depthwise:
            self.pending += [("in", a, b) for a, b in zip(self.cin, self.cin[1:])]
        self._probes: list[tuple[str, int, int, int, tuple]] = []
        self.touched: list[tuple[Signature, int, int]] = []

    def visit(self, points: list) -> list:
        self.touched += points
        return points

    def grid_points(self):
        sig = self.plan.signature
        if self.plan.depthwise:
            return [(sig, c, c) for c in self.cout]
        return [(sig, ci, co) for ci in self.cin for co in self.cout]

    def _mid(self, axis: str, a: int, b: int) -> int | None:
        cands = self.plan.cin_candidates if axis == "in" else self.plan.cout_candidates
        inner = [c for c in cands if a < c < b]
        return inner[len(inner) // 2] if inner else None

    def probes(self):
        sig = self.plan.signature
        self._probes = []
        out = []
        for axis, a, b in self.pending:
            m = self._mid(axis, a, b)
            if m is None:
                continue
            # the midpoint is probed at both ends of the other axis: fixed per-call costs bend
            # the curve at small counts, the work term at large ones
            if self.plan.depthwise:
                lines = [((a, a), (m, m), (b, b))]
            elif axis == "in":
                lines = [((a, co), (m, co), (b, co)) for co in sorted({self.cout[0], self.cout[-1]})]
            else:
                lines = [((ci, a), (ci, m), (ci, b)) for ci in sorted({self.cin[0], self.cin[-1]})]
            self._probes.append((axis, a, m, b, lines))
            out += [(sig, *pts[1]) for pts in lines]
        self.pending = []
        return out

    def decide(self, value) -> None:
        sig = self.plan.signature
        off = []
        for probe in self._probes:
            axis, a, m, b, lines = probe
            excess = max(_off_line(value, sig, pts, (m - a) / (b - a)) for pts in lines)
            if excess > 0:
                off.append((-excess, probe))
        # the worst bends first, while the axis has room: a knot costs a row of the grid
        for _, (axis, a, m, b, lines) in sorted(off, key=lambda x: x[0]):
            values = self.cin if axis == "in" else self.cout
            if len(values) >= MAX_KNOTS:
                continue
            values.append(m)
            values.sort()
            if self.plan.depthwise:
                self.cin = self.cout
            self.pending += [(axis, a, m), (axis, m, b)]
        self._probes = []


def _off_line(value, sig, pts, w: float) -> float:
    """How far (relative to the line) the middle point lies off the straight line between the
    outer two beyond REL_TOL plus the noise of the three measurements; <= 0: on the line."""
    (fa, na), (fm, nm), (fb, nb) = [_split(value(sig, *p)) for p in pts]
    line = fa + w * (fb - fa)
    return (abs(fm - line) - REL_TOL * line - NOISE_WEIGHT * (na + nm + nb) / 3) / line


def _split(v):
    median, p90 = v
    return median, max(0.0, p90 - median)


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _run_record(r: TaskResult, run_id: str, at_nominal: tuple[float, float]) -> dict:
    rec = {"median_ms": at_nominal[0], "p90_ms": at_nominal[1], "count": r.count, "at": utc_now(), "run": run_id}
    if r.reference_ms:
        rec["measured_ms"], rec["reference_ms"] = r.median_ms, r.reference_ms
    if r.energy_mj is not None and math.isfinite(r.energy_mj):
        rec["energy_mj"] = r.energy_mj
        rec["energy_source"] = r.energy_source
    if r.state:
        rec["state"] = r.state
    if r.converged is False:
        rec["converged"] = False   # max_seconds ran out first: this median is the less certain
    return rec


STEP_CHOICES = (1, 2, 4, 8, 16, 32)
STEP_TOL = 0.05
# the sweep's passes, interleaved; each count's median of them counts. One pass on this host
# read the step as 2, 8 and 16 in three sweeps: a timing is off by 10-20% in either direction
# now and then (a reference timed in a slow moment over-corrects), and the step decides how
# many entries every LUT of the device has.
SWEEP_PASSES = 3


# Where each count costs a compile (TVM): the multiples of 4 (the next multiple every step of
# 4 and up looks up) and the counts just below them (which tell steps 1, 2 and 4 apart);
# 17 counts instead of 33, and step_from_sweep decides on the same rule.
SPARSE_STEP_COUNTS = sorted(set(range(64, 97, 4)) | set(range(67, 97, 4)) | {65, 66})


def step_from_sweep(ms: dict[int, float]) -> int:
    """The largest step s such that pruning to a count that is not a multiple of s saves
    nothing: three quarters of the counts c cost at least what the next multiple of s costs,
    less STEP_TOL (`ms`: count -> ms over a range of counts; see measure_channel_step).

    One-sided, because what disturbs a timing on a shared machine makes it slower, and some
    unaligned counts really are slower than the next multiple (measured here: c_out 75-79
    at 1.27x the cost of 80); either is no reason to plan at a finer step. A symmetric test
    read a step of 8 as 2 on this host twice in three sweeps, and a step of 2 makes a LUT
    four times as many entries per axis."""
    lo, hi = min(ms), max(ms)
    step = 1
    for s in STEP_CHOICES:
        probe = [c for c in ms if c > lo and -(-c // s) * s <= hi]
        cheaper = [ms[c] < (1 - STEP_TOL) * ms[-(-c // s) * s] for c in probe]
        if len(cheaper) >= 2 and sum(cheaper) <= len(cheaper) / 4:
            step = s
    return step


def runnable(settings: Settings, onnx_path: Path) -> tuple[Path, dict]:
    """What the runner loads for an ONNX micro-model, with its task options: the model itself
    for ORT; for TVM its library (tuned with tvm_trials: the schedule lands in the target's
    tuning database, so a plan on the grid compiles with no new tuning)."""
    if settings.backend != "tvm":
        return onnx_path, settings.options
    import onnx

    from ..backends.tvm import TvmBackend

    artifact = TvmBackend().compile(onnx.load(str(onnx_path)), settings.tvm_target, onnx_path.with_suffix(".tvm"),
                                    {"tuning_trials": settings.tvm_trials, "check": False})
    return artifact.path("model"), artifact.run["options"]


def measure_channel_step(device: Device, settings: Settings, workdir: Path) -> tuple[int, dict]:
    """The channel step of the device's staircase, measured: time a 3x3 conv at c_out = 64..96
    (c_in 64, 14x14; each count in SWEEP_PASSES passes, their median counts) and take the largest
    step s for which counts cost what the next multiple of s costs — three quarters of the
    counts have |t(c) / t(next multiple of s) - 1| within STEP_TOL, so a few disturbed
    timings cannot decide the step; pruning to a count that is not a multiple of s then
    saves nothing."""
    sig = Signature(kind="conv", kernel=(3, 3), pads=(1, 1, 1, 1), in_hw=(14, 14), act="relu")
    counts = list(range(64, 97)) if settings.backend != "tvm" else SPARSE_STEP_COUNTS
    # every backend runs what it runs in a LUT entry (TVM: the compiled library)
    loads = {c: runnable(settings, micro_model_file(sig, 64, c, workdir)) for c in counts}
    ref = reference_model(settings, workdir)
    tasks = [settings.task(f"step|{c}|{k}", loads[c][0], loads[c][1], reference=ref)
             for k in range(max(SWEEP_PASSES, settings.passes)) for c in counts]
    results = device.measure(tasks)
    for r in results:
        if not r.ok:
            raise DeviceError(f"{device.spec}: measuring the channel step failed: {r.error}")
    nominal = nominal_of(results)
    by_count: dict[int, list[float]] = {}
    for r in results:
        by_count.setdefault(int(r.id.split("|")[1]), []).append(normalized(r, nominal)[0])
    ms = {c: statistics.median(v) for c, v in sorted(by_count.items())}
    sweep = {"c_in": 64, "kernel": "3x3", "in_hw": "14x14", "median_ms": {str(c): ms[c] for c in counts}}
    if nominal:
        sweep["reference_ms"] = nominal
    return step_from_sweep(ms), sweep
