"""MetaSchedule tuning for the TVM backend, with one persistent JSON database per target.

Records are keyed by the fused TIR function's structure and shapes, so a second run, or
another pruning plan of the same network, reuses every workload whose channel counts did
not change and tunes only the new ones (tasks already in the database are skipped).

Candidates are built in the tuning process itself: the stock LocalBuilder starts worker
processes that each spend ~20 s importing TVM's tensor intrinsics, so on a 2-core machine
most candidates time out. Built here a small kernel takes ~0.1 s; a ResNet convolution
candidate with deep unrolling took ~3 s on a heavily shared 2-core machine, which is what
bounds how many trials a time budget buys.

One tuning run per database at a time (a file lock): two compiles appending to the same
JSON files could interleave records.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tvm
from filelock import FileLock
from tvm import relax
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.builder import BuilderInput, BuilderResult, PyBuilder

from ..errors import UsageError

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    from .. import locations

    return locations.tvm_tuning_dir()


@dataclass(frozen=True)
class TuningConfig:
    """`max_trials` is the global trial budget; `max_trials_per_task` caps any one task so a
    small budget is spread over all of them (MetaSchedule otherwise leaves some untuned)."""

    max_trials: int
    max_trials_per_task: int | None = None
    num_trials_per_iter: int = 16
    population_size: int = 128        # of the evolutionary search; 512 (TVM's default) costs ~20 s per task per round
    # "evolutionary" (cost-model guided; its search and model updates cost 20-60 s per task
    # round on a shared 2-core machine) or "replay-trace" (random candidates, no search
    # cost: with small budgets more of the time goes into measuring candidates)
    strategy: str = "evolutionary"
    cache_dir: Path | None = None     # default: locations.tvm_tuning_dir()
    # tune the heaviest tasks that together hold this share of the FLOPs; the rest (reshapes,
    # pooling, small adds) would each cost a full search round for microseconds
    flop_share: float = 0.99
    runner_timeout_s: float = 30.0
    seed: int = 0
    # where candidates are timed: None for this host, else the device behind a TVM RPC
    # tracker; fcompile links a candidate for that device (a cross compiler)
    rpc: "RpcTracker | None" = None
    fcompile: Any = None


@dataclass(frozen=True)
class RpcTracker:
    """A device in a TVM RPC pool: MetaSchedule's candidates are uploaded to it and timed there."""
    host: str
    port: int
    key: str
    session_timeout_s: float = 300.0    # an emulated or slow board loads a candidate in seconds

    @classmethod
    def parse(cls, text: str) -> "RpcTracker":
        """HOST:PORT/KEY, as an rpc: device is written."""
        address, _, key = text.partition("/")
        host, _, port = address.rpartition(":")
        if not (host and port.isdigit() and key):
            raise UsageError(f"tuning over RPC: '{text}' is not HOST:PORT/KEY")
        return cls(host, int(port), key)


@dataclass
class TuningReport:
    database: Path
    tasks: int
    reused: int                       # tasks the database already held
    tuned: list[str] = field(default_factory=list)
    untuned: list[str] = field(default_factory=list)  # too light to be worth a search
    trials: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"database": str(self.database), "tasks": self.tasks, "reused": self.reused,
                "tuned": self.tuned, "untuned": self.untuned, "trials": self.trials, "seconds": round(self.seconds, 1)}


def database_dir(target: tvm.target.Target, cache_dir: Path | None = None) -> Path:
    """One database per target: schedules for one CPU are meaningless for another."""
    key = hashlib.sha256(json.dumps(target_json(target), sort_keys=True).encode()).hexdigest()[:16]
    return (cache_dir or default_cache_dir()) / f"{target.kind.name}-{key}"


def target_json(target: tvm.target.Target) -> dict[str, Any]:
    return json.loads(str(target)) if str(target).startswith("{") else {"target": str(target)}


def has_records(target: tvm.target.Target, cache_dir: Path | None = None) -> bool:
    records = database_dir(target, cache_dir) / "records.json"
    return records.exists() and records.stat().st_size > 0


def open_database(path: Path) -> ms.database.JSONDatabase:
    path.mkdir(parents=True, exist_ok=True)
    return ms.database.JSONDatabase(path_workload=str(path / "workloads.json"),
                                    path_tuning_record=str(path / "records.json"))


def prepare(mod: tvm.IRModule, target: tvm.target.Target) -> tvm.IRModule:
    """Legalise and fuse, so task extraction sees the fused TIR functions that compile
    will later look up. Weights are marked layout-free: a tuned schedule may then store them
    in its own tiled order (the rewrite is folded into the constants after tuning)."""
    with target:
        seq = tvm.transform.Sequential([
            relax.transform.DecomposeOpsForInference(),
            relax.transform.CanonicalizeBindings(),
            relax.pipeline.zero_pipeline(),
            relax.transform.AttachAttrLayoutFreeBuffers(),
        ])
        return seq(mod)


def tune(mod: tvm.IRModule, target: tvm.target.Target, config: TuningConfig) -> TuningReport:
    """Tune every task of the prepared `mod` that the target's database lacks."""
    start = time.monotonic()
    db_path = database_dir(target, config.cache_dir)
    db_path.mkdir(parents=True, exist_ok=True)
    with FileLock(str(db_path / ".lock")):
        return _tune_locked(mod, target, config, db_path, start)


def _tune_locked(mod, target, config: TuningConfig, db_path: Path, start: float) -> TuningReport:
    database = open_database(db_path)
    tasks = ms.relax_integration.extract_tasks(mod, target)
    missing = [t for t in tasks if not _has_record(database, t, target)]
    todo = _worth_tuning(missing, config.flop_share)
    report = TuningReport(database=db_path, tasks=len(tasks), reused=len(tasks) - len(missing),
                          untuned=[t.task_name for t in missing if t not in todo])
    if not todo or config.max_trials <= 0:
        report.seconds = time.monotonic() - start
        return report
    _cpu_tensor_intrinsics_only(target)
    per_task = config.max_trials_per_task or max(config.num_trials_per_iter, config.max_trials // len(todo))
    if config.strategy == "evolutionary":
        strategy = ms.search_strategy.EvolutionarySearch(population_size=config.population_size,
                                                         init_min_unmeasured=min(50, config.population_size // 2))
    elif config.strategy == "replay-trace":
        strategy = ms.search_strategy.ReplayTrace()
    else:
        raise UsageError(f"tuning strategy '{config.strategy}' is unknown (known: evolutionary, replay-trace)")
    _unnamed_handlers_off()
    contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
        extracted_tasks=todo, work_dir=str(db_path / "logs"), strategy=strategy, seed=config.seed)
    evaluator = ms.runner.EvaluatorConfig(number=3, repeat=1, min_repeat_ms=50)
    if config.rpc is None:
        runner = ms.runner.LocalRunner(timeout_sec=config.runner_timeout_s, evaluator_config=evaluator)
    else:
        rpc = config.rpc
        runner = ms.runner.RPCRunner(
            rpc_config=ms.runner.RPCConfig(tracker_host=rpc.host, tracker_port=rpc.port, tracker_key=rpc.key,
                                           session_timeout_sec=int(rpc.session_timeout_s)),
            evaluator_config=evaluator, max_workers=1)
    with tempfile.TemporaryDirectory(prefix="edgeprune-ms-") as work_dir:
        ms.tune.tune_tasks(
            tasks=contexts, task_weights=weights, work_dir=work_dir,
            max_trials_global=config.max_trials, max_trials_per_task=per_task,
            num_trials_per_iter=config.num_trials_per_iter,
            builder=InProcessBuilder(config.fcompile), runner=runner, database=database)
    report.tuned = [t.task_name for t in todo]
    report.trials = config.max_trials
    report.seconds = time.monotonic() - start
    return report


def _unnamed_handlers_off() -> None:
    """MetaSchedule re-configures its logger by handler *name* on every run (dictConfig), and
    fails on a handler that has none, e.g. one a test harness attached after the first run."""
    ms_log = logging.getLogger("tvm.s_tir.meta_schedule")
    for handler in [h for h in ms_log.handlers if h.get_name() is None]:
        ms_log.removeHandler(handler)


def apply_database(mod: tvm.IRModule, target: tvm.target.Target, cache_dir: Path | None = None) -> tvm.IRModule:
    """Replace every fused function the target's database has a record for by its best
    schedule; the rest keep their default lowering."""
    db_path = database_dir(target, cache_dir)
    with target:
        if has_records(target, cache_dir):
            with open_database(db_path):
                mod = relax.transform.MetaScheduleApplyDatabase(enable_warning=False)(mod)
        # the weights' layout rewrites, split out of the tuned kernels, fold into the constants
        return tvm.transform.Sequential([relax.transform.SplitLayoutRewritePreproc(),
                                         relax.transform.FoldConstant()])(mod)


def _worth_tuning(tasks: list, share: float) -> list:
    from tvm.s_tir.analysis import estimate_tir_flops

    def flops(t) -> float:
        try:
            return float(estimate_tir_flops(t.dispatched[0])) * t.weight
        except Exception:  # an op the estimator does not know: keep it
            return float("inf")

    ranked = sorted(tasks, key=flops, reverse=True)
    total = sum(f for f in map(flops, ranked) if f != float("inf"))
    kept, acc = [], 0.0
    for t in ranked:
        if total and acc >= share * total and flops(t) != float("inf"):
            break
        kept.append(t)
        acc += flops(t)
    return kept


def _has_record(database: ms.database.JSONDatabase, task, target) -> bool:
    return database.query_tuning_record(task.dispatched[0], target, workload_name="main") is not None


def _cpu_tensor_intrinsics_only(target: tvm.target.Target) -> None:
    """TuneContext imports `tvm.s_tir.tensor_intrin`, whose __init__ registers every
    platform's intrinsics: CUDA's, ROCm's and Hexagon's alone took 25 s of CPU on an idle
    machine here and over 7 minutes on a loaded 2-core one. CPU tuning needs only its own
    CPU's (int8 dot products), so register the package without running its __init__ and
    import that one."""
    name = "tvm.s_tir.tensor_intrin"
    if name in sys.modules:
        return
    import tvm.s_tir

    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = [str(Path(tvm.s_tir.__file__).parent / "tensor_intrin")]
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    tvm.s_tir.tensor_intrin = package
    triple = str(target.attrs.get("mtriple", "")) or "x86_64"
    importlib.import_module(f"{name}.{'arm_cpu' if triple.startswith('aarch64') else 'x86'}")


@derived_object
class InProcessBuilder(PyBuilder):
    """Builds each candidate in this process and links it as a shared library in a temp dir
    (the runner's worker loads it from there, or uploads it to the device, and deletes it);
    `fcompile` links for the device, this host's compiler when None."""

    def __init__(self, fcompile=None):
        super().__init__()
        self.fcompile = fcompile

    def build(self, build_inputs: list[BuilderInput]) -> list[BuilderResult]:
        from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock
        from tvm.support import cc

        fcompile = self.fcompile or cc.create_shared
        results = []
        for inp in build_inputs:
            try:
                mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(inp.mod)
                lib = tvm.compile(mod, target=inp.target)
                path = os.path.join(tempfile.mkdtemp(prefix="edgeprune-cand-"), "cand.so")
                lib.export_library(path, fcompile=fcompile)
                results.append(BuilderResult(path, None))
            except Exception as e:  # a bad candidate is a failed trial, not a failed tuning run
                results.append(BuilderResult(None, f"in-process build failed: {type(e).__name__}: {e}"))
        return results
