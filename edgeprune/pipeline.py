"""`compile` as a composition of the stages: load (export), analyse, LUT (profile only what is
missing), importance, plan, prune, recover, quantize, backend, verify, report.

Every stage is someone else's module; this file only moves their artifacts from one to the
next, records what each produced, and writes the artifact directory atomically (outdir.py).
Input checks that need no work run first (`check_request`), so bad usage exits 2 with
nothing written. The order of failure handling is the contract's: a bad input or an
infeasible budget leaves no OUTDIR; a failed gate leaves the complete artifact and then
raises GateFailed.
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .version import __version__
from .errors import UsageError
from .data.evaluation import RANDOM_SAMPLES, RANDOM_SEED, random_kind, random_samples, split_data
from .gates import GateResult, check_limits, evaluate, raise_if_failed
from .outdir import ArtifactDir, check_outdir, sha256_file
from .progress import StageHandle, Stages
from .provenance import provenance
from .verify import REFERENCE, measured_from

BACKENDS = ("ort", "tvm")
QUANTIZE = ("none", "int8")
CALIBRATION = ("minmax", "entropy", "percentile")
CRITERIA = ("l1", "l2", "bn", "taylor", "refit")
RETIMES = 2               # side-by-side re-timings of a shipped artifact that seemed to miss
TIMING_CALIB_SAMPLES = 8  # int8 builds that are only timed are calibrated on this many samples


@dataclass
class CompileRequest:
    """Everything `compile` is asked for; the command line and the Python API both fill it."""

    output: str
    model: str | None = None           # MODEL: .onnx path or `package.module:function`
    module: Any = None                 # or an nn.Module (Python API) with input_shape
    input_shape: str | None = None
    weights: str | None = None
    target: str = "host"
    budget: tuple[str, ...] = ()
    sweep: tuple[str, ...] = ()        # extra budgets for the fidelity-vs-latency plot
    backend: str = "ort"
    quantize: str = "none"
    # percentile ranges lost 0.4 points of agreement on EfficientNet-Lite0 where minmax lost 2.0
    calibration: str = "percentile"    # int8 activation ranges: minmax, entropy, percentile
    data: str | None = None
    data_arrays: Mapping[str, np.ndarray] | None = None   # DATA given as arrays (Python API)
    image_size: str | None = None
    mean: str | None = None
    std: str | None = None
    criterion: str | None = None       # default: refit with DATA, l1 without
    lut: str | None = None
    tuning_trials: int = 0
    finetune_steps: int = 0            # distillation steps from the dense model on DATA (0: off)
    gates: dict[str, float] = field(default_factory=dict)
    config: str | None = None          # the edgeprune.toml the flags came from, if any
    quiet: bool = False


@dataclass
class CompileResult:
    outdir: Path
    manifest: dict[str, Any]
    gates: list[GateResult]

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    @property
    def report(self) -> Path:
        return self.outdir / "report.md"


def check_request(req: CompileRequest) -> CompileRequest:
    """Every check that needs no work: exit 2 before anything is loaded or written."""
    from .plan.budget import parse_budget

    if (req.model is None) == (req.module is None):
        raise UsageError("give a MODEL (an .onnx file or package.module:function)")
    if req.backend not in BACKENDS:
        raise UsageError(f"--backend {req.backend}: expected one of {', '.join(BACKENDS)}")
    if req.quantize not in QUANTIZE:
        raise UsageError(f"--quantize {req.quantize}: expected one of {', '.join(QUANTIZE)}")
    if req.calibration not in CALIBRATION:
        raise UsageError(f"--calibration {req.calibration}: expected one of {', '.join(CALIBRATION)}")
    if not req.budget:
        raise UsageError("--budget is required (e.g. 12ms, 0.5x or 30mJ), on the command line "
                         "or as budget in the [compile] table of edgeprune.toml")
    parse_budget(req.budget)
    for s in req.sweep:
        parse_budget(s, flag="--sweep")
    has_data = req.data is not None or req.data_arrays is not None
    criterion = req.criterion or ("refit" if has_data else "l1")
    if criterion not in CRITERIA:
        raise UsageError(f"--criterion {criterion}: expected one of {', '.join(CRITERIA)}")
    if criterion in ("taylor", "refit") and not has_data:
        raise UsageError(f"--criterion {criterion} needs --data")
    if req.quantize == "int8" and not has_data:
        # static int8 needs activation ranges; calibrating on noise would ship a model whose
        # ranges fit noise, so we refuse rather than guess
        raise UsageError("--quantize int8 needs --data (calibration inputs for activation ranges); "
                         "give --data, or --quantize none")
    gates = check_limits(req.gates)
    if "min_fidelity" in gates and not has_data:
        raise UsageError("--min-fidelity needs --data: top-1 agreement on random inputs means nothing")
    if req.tuning_trials < 0:
        raise UsageError(f"--tuning-trials must be >= 0, got {req.tuning_trials}")
    from .distill import check_steps

    finetune_steps = check_steps(req.finetune_steps)
    if finetune_steps and not has_data:
        raise UsageError("--finetune-steps needs --data: the pruned model learns the dense one's outputs on it")
    if req.lut is not None and not str(req.lut).endswith(".json"):
        raise UsageError(f"--lut {req.lut}: a LUT is a .json file")
    check_outdir(req.output)
    return replace(req, criterion=criterion, gates=gates, finetune_steps=finetune_steps)


# --------------------------------------------------------------------------- stages
@dataclass
class Source:
    model: Any            # frontend Model
    module: Any           # nn.Module or None
    info: dict[str, Any]  # what the manifest says about the source


def load_source(req: CompileRequest, workdir: Path) -> Source:
    from .frontend.load import load_model
    from .frontend.resolve import parse_input_shape, resolve_model

    if req.module is not None:
        from .frontend.export import export_module

        if not req.input_shape:
            raise UsageError("an nn.Module needs input_shape (e.g. '1x3x224x224')")
        shapes = parse_input_shape(req.input_shape)
        path = export_module(req.module, shapes, workdir / "source.onnx")
        model = load_model(path)
        info = {"kind": "module", "path": type(req.module).__name__, "sha256": model.sha256,
                "input_shape": req.input_shape}
        return Source(model, req.module, info)
    r = resolve_model(req.model, input_shape=req.input_shape, weights=req.weights, workdir=workdir)
    factory = r.module is not None
    info = {"kind": "factory" if factory else "onnx",
            "path": req.model if factory else str(Path(req.model).resolve()),
            "sha256": r.model.sha256, "input_shape": req.input_shape}
    if req.weights:
        info["weights"] = {"path": str(Path(req.weights).resolve()), "sha256": sha256_file(Path(req.weights))}
    return Source(r.model, r.module, info)


@dataclass
class Data:
    calib: dict[str, np.ndarray] | None   # for importance, recovery, int8 calibration
    evaluation: dict[str, np.ndarray]     # for fidelity and output checks
    info: dict[str, Any]


def load_inputs(req: CompileRequest, model) -> Data:
    """DATA split into calibration and held-out evaluation samples; seeded random inputs
    (for output checks only) when there is no DATA."""
    if req.data is None and req.data_arrays is None:
        return Data(None, random_samples(model), {"given": False, "evaluation": "random",
                                                  "seed": RANDOM_SEED, "samples": RANDOM_SAMPLES})
    if req.data_arrays is not None:
        arrays = _check_arrays(req.data_arrays, model)
        info = {"given": True, "path": None, "source": "arrays"}
    else:
        from .data import load_data_for

        arrays = load_data_for(req.data, model, image_size=req.image_size, mean=req.mean, std=req.std)
        p = Path(req.data)
        info = {"given": True, "path": str(p.resolve()),
                "sha256": sha256_file(p) if p.is_file() else None}
    calib, evaluation, split = split_data(arrays)
    return Data(calib, evaluation, {**info, **split})


def _check_arrays(arrays: Mapping[str, np.ndarray], model) -> dict[str, np.ndarray]:
    if set(arrays) == {"__single__"}:   # one array given for a single-input model
        if len(model.input_shapes) != 1:
            raise UsageError(f"data: the model has inputs {sorted(model.input_shapes)}; give a mapping")
        arrays = {next(iter(model.input_shapes)): arrays["__single__"]}
    out = {}
    for name, shape in model.input_shapes.items():
        if name not in arrays:
            raise UsageError(f"data: no array for model input '{name}' (have {sorted(arrays)})")
        a = np.asarray(arrays[name], dtype=np.float32)
        if a.ndim != len(shape) or tuple(a.shape[1:]) != tuple(shape[1:]) or len(a) == 0:
            raise UsageError(f"data['{name}']: shape {a.shape}, expected (N, {', '.join(map(str, shape[1:]))})")
        out[name] = a
    return out


@dataclass
class Costs:
    latency_model: Any
    cost_model: Any
    info: dict[str, Any]


def latency_costs(model, req: CompileRequest, stage) -> Costs:
    """The device's LUT with the entries this model needs, profiling only the missing ones."""
    from .devices.detect import with_profile
    from .devices.profile import parse_device
    from .lut.api import latency_model
    from .lut.paths import default_lut_path
    from .lut.predict import structure_key
    from .plan.costs import LutCostModel

    # a device given by address alone is priced under the profile detected for it (its LUT
    # carries that profile's name, as `profile --device` wrote it)
    spec = with_profile(parse_device(req.target))
    before = _lut_size(req.lut or (default_lut_path(spec, req.backend) if spec.kind == "local" else None))
    if req.lut and not Path(req.lut).exists() and spec.kind == "local":
        # lut.api reads an existing LUT only; a new --lut file is created by measuring
        from .lut.api import measure_model_entries

        measure_model_entries(model, spec, req.backend, req.lut, stage.progress)
    lm = latency_model(model, spec, req.backend, req.lut, progress=stage.progress)
    lut = getattr(lm, "lut", None)
    prior_step = spec.profile.channel_step if spec.profile is not None and \
        isinstance(spec.profile.channel_step, int) else None
    cost = LutCostModel(lm, channel_step=None if lut is not None else prior_step)
    info: dict[str, Any] = {"kind": "lut" if lut is not None else "roofline", "estimated": bool(cost.estimated)}
    if lut is not None:
        path = getattr(lut, "path", None) or req.lut or default_lut_path(spec, req.backend)
        record = lut.models.get(structure_key(model), {})
        info.update(path=str(path), entries=len(lut.entries),
                    measured_now=max(0, len(lut.entries) - before), channel_step=lut.channel_step,
                    dense_measured_ms=record.get("dense_ms"), dense_measured_p90_ms=record.get("dense_p90_ms"))
        stage.note(f"{info['measured_now']} entries measured, {len(lut.entries)} in {Path(path).name}")
    else:
        stage.note("no measured LUT: roofline prior (estimated)")
    return Costs(lm, cost, info)


def _lut_size(path) -> int:
    if path is None or not Path(path).is_file():
        return 0
    from .lut.table import load_lut

    try:
        return len(load_lut(path).entries)
    except UsageError:
        return 0


def predict_layers(costs: Costs, model) -> dict[str, float] | None:
    """Per fused layer latency of `model` (a pruned variant of the dense one) from the LUT;
    None where the LUT cannot answer without new measurements."""
    from .lut.interp import LutMiss

    lm = costs.latency_model
    lut = getattr(lm, "lut", None)
    try:
        if lut is None:
            return type(lm).for_model(lm.roofline, model).predict().layers_ms
        return type(lm).for_model(lut, model).predict().layers_ms
    except (LutMiss, KeyError, UsageError):
        return None


def fidelity_of(dense_out, model, data) -> dict[str, Any]:
    from .fidelity import compare, outputs

    return compare(dense_out, outputs(model, data)).to_json()


# --------------------------------------------------------------------------- compile
def compile_model(req: CompileRequest) -> CompileResult:
    req = check_request(req)
    out = Path(req.output)
    with Stages(quiet=req.quiet) as stages, ArtifactDir(out) as art, \
            tempfile.TemporaryDirectory(prefix="edgeprune-compile-") as tmp:
        run = _Run(req, stages, art.path, Path(tmp))
        manifest = run.build()
        gates = run.gates(manifest)
        manifest["gates"] = {g.name: g.to_json() for g in gates}
        with stages.stage("report", "report") as st:
            run.write_report(manifest)
            st.note(str(out / "report.md"))
        from .report.manifest import validate

        validate({**manifest, "files": {}})   # a manifest that breaks its schema is a bug: exit 1
        art.commit(manifest)
    from .report.manifest import load_manifest

    final = load_manifest(out)
    result = CompileResult(out, final, gates)
    raise_if_failed(gates, str(out))
    return result


def stage(key: str, title: str | Callable[[CompileRequest], str]):
    """A step of the run that shows as progress stage `key` and is timed in the manifest
    (`timings_s`); `title` is formatted with the request (`{req.criterion}`)."""
    def wrap(method: Callable[[_Run, StageHandle], None]) -> Callable[[_Run], None]:
        @functools.wraps(method)
        def run(self: _Run) -> None:
            text = title(self.req) if callable(title) else title.format(req=self.req)
            with self.stages.stage(key, text) as st:
                method(self, st)
        return run
    return wrap


class _Run:
    """One compile: `steps()` in order, each leaving its artifact on `self` for the next."""

    def __init__(self, req: CompileRequest, stages: Stages, staging: Path, workdir: Path):
        self.req, self.stages, self.staging, self.workdir = req, stages, staging, workdir
        self.fidelity: dict[str, Any] = {}
        self.notes: list[str] = []
        self.sweep: list[dict[str, Any]] = []
        self.lut_writer = None    # the device's LUT, opened for writing while the plan is fitted
        self.finetune: dict[str, Any] | None = None   # the distillation stage's record, when it ran
        self._last_outputs: tuple[Any, Any] = (None, None)   # (model, its outputs on the held-out samples)

    def steps(self) -> list[Callable[[], None]]:
        """The compile, in order. A new stage is one method below (decorated with `stage`
        when it should show in the progress and in `timings_s`) and one entry here."""
        int8 = self.req.quantize == "int8"
        return [self.load_model, self.analyse_channels, self.open_target, self.price_layers,
                self.score_channels, self.fit_plan, self.dense_outputs, self.prune_channels,
                self.recover_weights, *([self.finetune_weights] if self.req.finetune_steps else []),
                self.save_fp32,
                *([self.quantize_int8] if int8 else []),
                self.compile_backend, self.verify_on_device,
                *([self.sweep_budgets] if self.req.sweep else [])]

    def build(self) -> dict[str, Any]:
        for step in self.steps():
            step()
        return self._manifest()

    # ------------------------------------------------------------------ steps
    @stage("model", "load / export model")
    def load_model(self, st: StageHandle) -> None:
        from .frontend.load import save_model

        self.source = src = load_source(self.req, self.workdir)
        st.note(f"{src.model.name}: {len(src.model.proto.graph.node)} nodes")
        # the dense reference travels with the artifact: `verify` of a moved or downloaded
        # artifact re-checks fidelity from it (hash-checked in the manifest), not from the
        # source path of this machine
        save_model(src.model.proto, self.staging / REFERENCE)

    @stage("analyse", "channel analysis")
    def analyse_channels(self, st: StageHandle) -> None:
        from .graph import analyze

        self.analysis = analysis = analyze(self.source.model)
        if not analysis.prunable():
            raise UsageError(f"{self.req.model or 'module'}: no prunable channel group (see `edgeprune inspect`)")
        st.note(f"{len(analysis.prunable())} prunable groups")
        self.data = load_inputs(self.req, self.source.model)

    def open_target(self) -> None:
        """The device, its backend target and whether the shipped artifact can be timed on it."""
        from .backends.base import TargetSpec
        from .devices.detect import with_profile
        from .devices.profile import load_profile, parse_device
        from .lut.session import spec_runtime
        from .quantize.ort_qdq import saturating_int8
        from .shipped import measurable

        # a phone or board given by address alone is read once and gets a profile of its own:
        # the artifact is built for its architecture, never this host's
        self.spec = with_profile(parse_device(self.req.target))
        self.target_spec = TargetSpec.from_profile(self.spec.profile if self.spec.profile is not None
                                                   else load_profile("host"))
        self.runtime = spec_runtime(self.spec, self.req.backend)
        self.not_measurable = measurable(self.spec)
        profile = self.spec.profile
        arch = profile.cpu.get("arch") if profile is not None else ("aarch64" if self.spec.kind == "adb" else None)
        self.int8_7bit = saturating_int8(arch)

    @stage("lut", lambda req: "latency table (missing entries)" + (", int8" if req.quantize == "int8" else ""))
    def price_layers(self, st: StageHandle) -> None:
        # an int8 artifact is priced on int8 entries (QDQ micro-models), found in the
        # quantized dense model's layers; its node names are the fp32 model's
        model = self.source.model
        self.priced = priced = self._quantize_for_timing(model) if self.req.quantize == "int8" else model
        self.costs = latency_costs(priced, self.req, st)

    @stage("importance", "importance ({req.criterion})")
    def score_channels(self, st: StageHandle) -> None:
        from .importance import compute

        self.scores = compute(self.source.model, self.analysis, self.req.criterion, data=self.data.calib,
                              module=self.source.module)

    @stage("plan", "plan (latency-saliency knapsack), fitted on the device")
    def fit_plan(self, st: StageHandle) -> None:
        from .plan.budget import parse_budget

        self.budget = parse_budget(self.req.budget)
        self.fit = self._fit_plan(self.scores, st)
        self.plan_result = self.fit.plan_result
        self.plan = plan = self.plan_result.plan
        plan.budget = self.budget.to_json()
        # the timings go to the manifest, not plan.json: the same inputs give the same plan bytes
        if self.fit.measured_ms is not None:
            st.note(f"measured {self.fit.measured_ms:.3f} ms of dense {self.fit.dense_ms:.3f} ms")
        else:
            st.note(f"predicted {plan.predicted['latency_ms']:.3f} ms (not measured: {self.fit.not_measured})")

    def dense_outputs(self) -> None:
        self.dense_out = self._outputs(self.source.model, self.data.evaluation)

    @stage("prune", "prune")
    def prune_channels(self, st: StageHandle) -> None:
        from .rewrite import prune

        keep = self.plan.keep
        self.pruned = prune(self.source.model, self.analysis, keep) if keep else self.source.model
        self._fidelity("pruned", self.pruned)
        self.fp32 = self.pruned

    @stage("recover", "recover (reconstruction, BN)")
    def recover_weights(self, st: StageHandle) -> None:
        if self.data.calib is None:
            st.note("skipped: no DATA")
            self.notes.append("No DATA: recovery (reconstruction, BN) did not run; only data-free "
                              "criteria were used.")
        elif self.plan.keep:
            from .recover import recover

            rec = recover(self.source.model, self.pruned, self.analysis, self.plan.keep, self.data.calib)
            self.fp32 = rec.model
            self._fidelity("recovered", self.fp32)
            st.note(f"{len(rec.steps)} layers refit")

    @stage("finetune", "fine-tune ({req.finetune_steps} distillation steps from the dense model)")
    def finetune_weights(self, st: StageHandle) -> None:
        from .distill import DistillOptions, distill

        if not self.plan.keep:
            st.note("skipped: the dense model ships")
            return
        d = distill(self.source.model, self.fp32, self.data.calib, DistillOptions(steps=self.req.finetune_steps))
        self.finetune = {"steps": d.steps, "kept": d.kept, "loss_before": d.loss_before,
                         "loss_after": d.loss_after, "trained_initializers": len(d.trained),
                         "calibration_samples": len(next(iter(self.data.calib.values())))}
        if d.kept:
            self.fp32 = d.model
            self._fidelity("finetuned", self.fp32)
        else:
            self.notes.append(f"Fine-tuning ({d.steps} steps) did not lower the distillation loss on the "
                              f"calibration data ({d.loss_before:.4g} -> {d.loss_after:.4g}): the recovered "
                              "model ships.")
        st.note(f"distillation loss on calibration data {d.loss_before:.4g} -> {d.loss_after:.4g}"
                + ("" if d.kept else " (not lower: recovered weights kept)"))

    def save_fp32(self) -> None:
        from .frontend.load import save_model
        from .plan.schema import save_plan

        save_model(self.fp32.proto, self.staging / "model.onnx")
        save_plan(self.plan, self.staging / "plan.json")
        self.deployed = self.fp32    # unless a later step quantizes it

    @stage("quantize", "quantize (int8 QDQ, {req.calibration})")
    def quantize_int8(self, st: StageHandle) -> None:
        from .frontend.load import save_model
        from .quantize import quantize_int8

        self.deployed = quantize_int8(self.fp32, self.data.calib, method=self.req.calibration,
                                      reduce_range=self.int8_7bit)
        save_model(self.deployed.proto, self.staging / "model.int8.onnx")
        self._fidelity("int8", self.deployed)

    @stage("compile", "compile ({req.backend})")
    def compile_backend(self, st: StageHandle) -> None:
        self.artifact = self._compile()
        self.kernels = self._kernels()
        st.note(", ".join(sorted(self.artifact.files.values())))

    @stage("verify", "verify on the device")
    def verify_on_device(self, st: StageHandle) -> None:
        self.verified = self._verify()
        m = self.verified.get("measured_median_ms")
        st.note(f"median {m:.3f} ms" if m is not None else "not measurable here")
        self._check_shipped(st)

    @stage("sweep", lambda req: f"sweep ({len(req.sweep)} budgets)")
    def sweep_budgets(self, st: StageHandle) -> None:
        self.sweep = self._sweep(self.scores)

    # ------------------------------------------------------------------ helpers
    def _quantize_for_timing(self, model):
        """`model` as int8 ships it, calibrated on a few samples: kernel speed does not depend
        on the ranges, and the shipped model is calibrated on all of DATA."""
        from .quantize import quantize_int8

        few = {k: v[:TIMING_CALIB_SAMPLES] for k, v in self.data.calib.items()}
        # nor on the biases: no bias correction
        return quantize_int8(model, few, method=self.req.calibration, reduce_range=self.int8_7bit,
                             correct_bias=False)

    def _backend_options(self) -> dict[str, Any]:
        return self._tvm_options() if self.req.backend == "tvm" else {}

    def _tvm_options(self) -> dict[str, Any]:
        options = {"int8": self.req.quantize == "int8", "tuning_trials": self.req.tuning_trials}
        if self.spec.kind == "rpc":
            # MetaSchedule's candidates are timed where the artifact will run: the pool's device
            options["tuning_rpc"] = f"{self.spec.host}:{self.spec.port}/{self.spec.key}"
        return options

    def _fit_plan(self, scores, st):
        """The plan for the budget, closed on the device: candidates are built as they ship and
        timed beside the dense model (budget_fit.py); a prediction only where the target
        cannot be measured, and then said so."""
        from contextlib import ExitStack

        from .budget_fit import fit_plan
        from .plan.budget import Budget
        from .plan.planner import plan_channels
        from .rewrite import prune
        from .shipped import ShippedTimer

        req, analysis, budget = self.req, self.analysis, self.budget

        def plan_at(limit):
            def planned():
                return plan_channels(analysis, scores, self.costs.cost_model,
                                     Budget(latency_ms=limit, energy_mj=budget.energy_mj),
                                     device=req.target, criterion=req.criterion)
            result = planned()
            # priced again once the transferred entries it landed on are measured
            return planned() if self._refine_where_planned(result, st) else result

        def candidate_of(result):
            return prune(self.source.model, analysis, result.plan.keep) if result.plan.keep else self.source.model

        with ExitStack() as stack:
            timer = None
            if self.not_measurable is None:
                timer = stack.enter_context(ShippedTimer(
                    self.spec, req.backend, self.target_spec,
                    prepare=self._quantize_for_timing if req.quantize == "int8" else None,
                    backend_options=self._backend_options()))
                self.lut_writer = self._open_lut_writer(timer)
            dense_ms, whole_ms = self._dense_reference(timer) if timer is not None else \
                (self._dense_predicted_ms(), None)
            target_ms = budget.limits(dense_ms)[0]
            record_key = self._fit_record_key(target_ms) if timer is not None and target_ms else None
            start = self._lut_record(record_key).get("limit_ms") if record_key else None
            # the int8 dense prediction needs the fp32 entries too (a minute to measure from
            # nothing): only asked for when round 1 finds no plan
            fit = fit_plan(plan_at, budget, timer, self.source.model, candidate_of, dense_ms,
                           req.target, note=st.note, not_measured=self.not_measurable, start_ms=start,
                           dense_predicted_ms=self._dense_predicted_ms if timer is not None else None,
                           whole_ms=whole_ms)
            if record_key and self.lut_writer is not None and fit.limit_ms is not None and fit.limit_ms != start:
                self.lut_writer.set_model(record_key, {
                    "rest_ms": 0.0, "limit_ms": fit.limit_ms,
                    "name": f"{self.source.model.name}: planning limit that ships {target_ms:.6f} ms"})
            return fit

    def _refine_where_planned(self, result, st) -> bool:
        """A LUT transferred from another device (lut/transfer.py) measured where this plan
        lands (lut/refine.py); True when the costs were re-read."""
        from .lut.refine import refined_model
        from .plan.costs import LutCostModel

        if self.not_measurable is not None:
            return False
        channels = self.analysis.layer_channels({g.id: g.kept for g in result.plan.groups})
        refined = refined_model(self.costs.latency_model, self.priced, channels, self.spec, self.req.backend)
        if refined is None:
            return False
        lm, how = refined
        st.note(f"{how.measured} transferred LUT entries measured where the plan lands")
        self.costs = Costs(lm, LutCostModel(lm), {**self.costs.info, "entries": len(lm.lut.entries)})
        return True

    def _fit_record_key(self, target_ms: float) -> str:
        """Where the planning limit that met this target is kept in the LUT: per model
        structure, dtype, backend options and target (a later compile starts from it)."""
        from .lut.predict import structure_key

        return (f"{structure_key(self.source.model)}:shipped-fit:{self.req.quantize}:{self.req.calibration}:"
                f"{self.req.criterion}:{target_ms:.6f}")

    def _open_lut_writer(self, timer):
        """The LUT the costs came from, where whole-model timings are kept for the next
        compile; None when the costs are a roofline prior (no LUT file)."""
        from .lut.session import open_writer

        path = self.costs.info.get("path")
        return open_writer(timer.device, self.req.backend, path)[0] if path else None

    def _lut_record(self, key: str) -> dict:
        writer = self.lut_writer
        return dict(writer.lut.models.get(key) or {}) if writer is not None else {}

    def _dense_reference(self, timer) -> tuple[float, float | None]:
        """The dense fp32 model as it ships on the device, in ms, and with int8 the whole
        model quantized as it ships, timed beside it (the closed loop's first point, see
        budget_fit.py): measured once and kept in the LUT (a whole-model record beside the
        layers, same runtime configuration), so every compile of this model on this device
        plans against the same figures."""
        from .lut.predict import structure_key

        key = f"{structure_key(self.source.model)}:shipped-dense"
        record = self._lut_record(key)
        int8 = self.req.quantize == "int8"
        if record.get("dense_ms") and (not int8 or record.get("int8_ms")):
            return float(record["dense_ms"]), record.get("int8_ms") if int8 else None
        models = {"dense": self.source.model, **({"int8": self.priced} if int8 else {})}
        ms = timer.time(models, prepared={name: True for name in models})
        dense = float(record.get("dense_ms") or ms["dense"])
        # a dense figure kept from an earlier compile stays: the int8 one goes on its scale
        whole = ms["int8"] / ms["dense"] * dense if int8 else None
        if self.lut_writer is not None:
            self.lut_writer.set_model(key, {**record, "rest_ms": 0.0, "dense_ms": dense,
                                            **({"int8_ms": whole} if int8 else {}),
                                            "name": f"{self.source.model.name} (dense, built as it ships)"})
        return dense, whole

    def _dense_predicted_ms(self) -> float:
        """The dense fp32 model's predicted latency (what an `x` budget is a fraction of when
        the target cannot be measured)."""
        if self.req.quantize != "int8":
            return float(self.costs.latency_model.predict_ms())
        from .lut.api import latency_model

        return float(latency_model(self.source.model, self.spec, self.req.backend, self.req.lut).predict_ms())

    def _check_shipped(self, st) -> None:
        """The artifact that ships, measured, meets its budget and beats dense (exit 3
        otherwise). A miss in the verify timing is re-timed beside the dense model first, so
        a load spike on a shared machine is not taken for a miss."""
        from .budget_fit import SHIP_TOL, check_shippable
        from .shipped import ShippedTimer

        fit, measured = self.fit, self.verified.get("measured_median_ms")
        if measured is None or fit.dense_ms is None:
            return
        limit = min(x for x in (fit.target_ms, fit.dense_ms) if x is not None)
        shipped_ms = measured
        if measured > limit * (1 + SHIP_TOL):
            with ShippedTimer(self.spec, self.req.backend, self.target_spec,
                              backend_options=self._backend_options()) as timer:
                dense_art = timer.build(self.source.model, prepared=True)
                # load only ever slows a run down: the best of up to RETIMES side-by-side ratios
                for _ in range(RETIMES):
                    ms = timer.time_artifacts({"dense": dense_art, "shipped": self.artifact})
                    shipped_ms = min(shipped_ms, ms["shipped"] / ms["dense"] * fit.dense_ms)
                    st.note(f"re-timed beside dense: {ms['shipped']:.3f} ms vs dense {ms['dense']:.3f} ms")
                    if shipped_ms <= limit * (1 + SHIP_TOL):
                        break
        self.verified["shipped_vs_dense"] = shipped_ms / fit.dense_ms
        from .budget_fit import Fit

        check_shippable(Fit(fit.plan_result, fit.target_ms, fit.dense_ms, shipped_ms, fit.rounds,
                            ships_dense=fit.ships_dense), self.budget, self.req.target)

    def _outputs(self, model, inputs):
        from .fidelity import outputs

        return outputs(model, inputs)

    def _fidelity(self, stage: str, model) -> None:
        if self.data.calib is not None:
            from .fidelity import compare

            out = self._outputs(model, self.data.evaluation)
            self.fidelity[stage] = compare(self.dense_out, out).to_json()
            # the model that ships is run on the same samples again by verify: kept for it
            self._last_outputs = (model, out)

    def _compile(self):
        target = self.target_spec
        int8 = self.req.quantize == "int8"
        if self.req.backend == "ort":
            from .backends.ort import OrtBackend

            # an int8 model optimised by ORT differs from the QDQ reference by rounding; the
            # verify stage measures that difference instead of failing on a 1e-4 tolerance
            return OrtBackend().compile(self.deployed.proto, target, self.staging, {"check": not int8})
        from .backends.tvm import TvmBackend

        options = {**self._tvm_options(), "check": not int8}
        return TvmBackend().compile(self.deployed.proto, target, self.staging / "tvm", options)

    def _kernels(self) -> dict[str, Any]:
        """The op histogram of the graph the runtime runs (after its own optimisations) and
        the convolutions left in float."""
        if self.artifact.backend != "ort":
            return {"runtime": "tvm", "ops": None, "float_convs": None,
                    "note": "TVM lowers to its own kernels; no ONNX op histogram"}
        from .backends.ort import float_convs, op_histogram, runtime_graph

        graph = runtime_graph(self.artifact)
        return {"runtime": f"onnxruntime ({self.runtime.describe()}), on this host",
                "ops": op_histogram(graph), "float_convs": float_convs(graph)}

    def _verify(self) -> dict[str, Any]:
        from .fidelity import compare
        from .verify import check_artifact

        kind = "DATA (held-out samples)" if self.data.calib is not None else random_kind()
        model, out = self._last_outputs
        checked = check_artifact(self.artifact, self.deployed, self.data.evaluation, self.req.target,
                                 self.staging, kind, reference=out if model is self.deployed else None)
        if self.data.calib is not None and checked.outputs is not None:
            self.fidelity["artifact"] = compare(self.dense_out, checked.outputs).to_json()
        return checked.info

    def _sweep(self, scores) -> list[dict[str, Any]]:
        """Plan, prune and recover at each extra budget: predicted latency against fidelity."""
        from .errors import InfeasibleBudget
        from .plan.budget import parse_budget
        from .plan.planner import plan_channels
        from .recover import recover
        from .rewrite import prune

        points = []
        for text in self.req.sweep:
            b = parse_budget(text, flag="--sweep")
            point: dict[str, Any] = {"budget": b.text}
            try:
                plan = plan_channels(self.analysis, scores, self.costs.cost_model, b,
                                     device=self.req.target, criterion=self.req.criterion).plan
            except InfeasibleBudget as e:
                point["infeasible"] = str(e)
                points.append(point)
                continue
            point["predicted_ms"] = plan.predicted["latency_ms"]
            if self.data.calib is not None:
                m = prune(self.source.model, self.analysis, plan.keep) if plan.keep else self.source.model
                if plan.keep:
                    m = recover(self.source.model, m, self.analysis, plan.keep, self.data.calib).model
                point["fidelity"] = fidelity_of(self.dense_out, m, self.data.evaluation)
            points.append(point)
        return points

    # ------------------------------------------------------------------ manifest
    def _manifest(self) -> dict[str, Any]:
        from .graph import analyze

        req, plan = self.req, self.plan_result.plan
        after = analyze(self.fp32)
        p = plan.predicted
        lat_limit, en_limit = self.budget.limits(p["dense_latency_ms"])
        layers_before = predict_layers(self.costs, self.source.model)
        layers_after = predict_layers(self.costs, self.fp32)
        int8_pred = predict_layers(self.costs, self.deployed) if req.quantize == "int8" else None
        target = dict(self.artifact.target)
        target.update(device=req.target, backend=req.backend)
        v = self.verified
        energy_measured = v.get("energy_mj")
        return {
            "format": "edgeprune-artifact",
            "edgeprune_version": __version__,
            "provenance": provenance(self.runtime, getattr(self.costs.latency_model, "lut", None)),
            "source": self.source.info,
            "target": target,
            "budget": {**self.budget.to_json(), "limit_ms": lat_limit, "limit_mj": en_limit},
            "plan": {"criterion": plan.criterion, "file": "plan.json",
                     "groups": {g.id: {"name": g.name, "kept": g.kept, "total": g.total} for g in plan.groups},
                     "importance_kept": plan.importance["kept"] / max(plan.importance["total"], 1e-30),
                     "solver": plan.solver},
            "latency_ms": {
                "dense_predicted": p["dense_latency_ms"], "predicted": p["latency_ms"],
                "predicted_int8": (sum(int8_pred.values()) + (self.costs.latency_model.rest_ms or 0.0))
                if int8_pred else None,
                # the dense model built and run as the artifact is (same runtime configuration)
                "dense_measured": self.fit.dense_ms,
                "dense_measured_source": "dense model built as it ships, timed beside the candidates"
                if self.fit.dense_ms is not None else None,
                "target_ms": self.fit.target_ms,
                "measured_median": v.get("measured_median_ms"), "measured_p90": v.get("measured_p90_ms"),
                # as a ratio to the dense model timed beside it when a load spike was re-timed
                "speedup_measured": 1 / v["shipped_vs_dense"] if v.get("shipped_vs_dense") else
                (self.fit.dense_ms / v["measured_median_ms"]) if self.fit.dense_ms and v.get("measured_median_ms")
                else None,
                "estimated": bool(self.costs.cost_model.estimated),
                "measured_on": v.get("measured_on"),
                "closed_loop": self.fit.to_json(),
                "runtime": self.runtime.key(),
                "layers_before": layers_before, "layers_after": layers_after,
            },
            "energy_mj": {
                "dense_predicted": p["dense_energy_mj"], "predicted": p["energy_mj"],
                "predicted_source": "estimated" if p["energy_estimated"] else "lut",
                "measured": energy_measured, "measured_source": v.get("energy_source"),
                **({"not_measured": v["energy_note"]} if v.get("energy_note") else {}),
            },
            "macs": {"before": int(self.analysis.macs), "after": int(after.macs)},
            "params": {"before": int(self.analysis.params), "after": int(after.params)},
            "fidelity": {"data": self.data.info, "stages": self.fidelity} if self.data.calib is not None
            else None,
            "quantize": {"mode": req.quantize,
                         "calibration": None if req.quantize == "none" else
                         f"{req.calibration} over {self.data.info.get('calibration')} DATA samples, "
                         "per-channel int8 weights" + (" (7-bit: the target's int8 kernels add in "
                                                       "int16 with saturation)" if self.int8_7bit else "")
                         + ", BN folded"},
            "verify": {k: v[k] for k in v if k not in ("energy_mj", "energy_source", "energy_note")},
            "kernels": self.kernels,
            "lut": self.costs.info,
            "sweep": self.sweep,
            "finetune": self.finetune,
            "notes": self.notes,
            "timings_s": dict(self.stages.seconds),
            "config": req.config,
        }

    def gates(self, manifest: dict[str, Any]) -> list[GateResult]:
        results = evaluate(self.req.gates, measured_from(manifest, self.staging))
        if self.req.quantize == "int8" and self.req.backend == "ort":
            from .gates import int8_kernel_gate

            results.append(int8_kernel_gate(self.kernels.get("float_convs"), self.kernels["runtime"]))
        return results

    def write_report(self, manifest: dict[str, Any]) -> None:
        from .report.markdown import render
        from .report.plots import write_plots

        manifest["plots"] = write_plots(manifest, self.staging / "plots")
        (self.staging / "report.md").write_text(render(manifest))

