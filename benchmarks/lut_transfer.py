"""A LUT transferred to a new device against one measured there from nothing (issue 18 item 4).

The honest "new device of a known kind" on this machine is another runtime configuration of
the same CPU: the source LUT is measured with ONNX Runtime at two threads (a profile written
here, channel step 16), the new device is `host` (one thread, its own channel step sweep).
Per model, in one run:

- scratch: the new device's LUT measured from nothing (`profile`: sweep, grid, calibration);
- transfer: the source LUT transferred with `--anchors N` anchors measured on the new device
  (edgeprune/lut/transfer.py), nothing else measured; priced with the source's whole-model
  terms carried over (its scale, its rest scaled as an entry of the rest's time would be),
  which transfer leaves behind: this row says why;
- transfer+terms: the model's whole-model terms fitted on the new device against the
  transferred entries (`profile --transfer-from OTHER --model M`: whole models timed, no entry);
- refined: the transferred LUT refined where each plan lands (edgeprune/lut/refine.py): the
  configurations below taken one after another as plans, each priced after its own transferred
  entries (and, the first time, the model's whole-model terms) were measured.

The plans are random pruned sub-networks drawn as benchmarks/lut_accuracy.py draws them
(every prunable group keeps a random ratio in [0.2, 1], rounded to both LUTs' steps),
timed whole on the new device once (3 interleaved passes, the middle one), and every LUT's
prediction is compared with that median, raw and at that LUT's nominal speed (the reference
layer timed beside it). Device time is the wall time each LUT's measurements took here.

    .venv/bin/python benchmarks/lut_transfer.py [--models efficientnet_lite0,mobilenetv2]
        [--configs 20] [--anchors 16]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeprune import locations  # noqa: E402
from edgeprune.devices.open import open_device  # noqa: E402
from edgeprune.frontend.load import load_model, save_model  # noqa: E402
from edgeprune.graph import analyze  # noqa: E402
from edgeprune.lut.layers import model_layers  # noqa: E402
from edgeprune.lut.predict import LatencyModel, structure_key  # noqa: E402
from edgeprune.lut.profiler import Profiler  # noqa: E402
from edgeprune.lut.reference import normalized  # noqa: E402
from edgeprune.lut.refine import refine  # noqa: E402
from edgeprune.lut.session import open_writer, profile_settings  # noqa: E402
from edgeprune.lut.table import load_lut  # noqa: E402
from edgeprune.lut.transfer import ScaleFit, transfer_lut  # noqa: E402
from edgeprune.rewrite import prune  # noqa: E402

from lut_accuracy import _shares, random_keep, subjects  # noqa: E402


def source_profile(folder: Path) -> Path:
    """This host's profile at two threads (the wall clock: CPU time adds up both threads)."""
    text = (locations.profiles_dir() / "host.toml").read_text()
    text = text.replace('name = "host"', 'name = "host-2threads"').replace("threads = 1", "threads = 2")
    text = text.replace('clock = "cpu"', 'clock = "wall"').replace('channel_step = "measure"', "channel_step = 16")
    path = folder / "host-2threads.toml"
    path.write_text(text)
    return path


def measure_lut(device, path: Path, model, name: str) -> tuple[float, int]:
    """(seconds, entries) to measure `model`'s LUT into `path` from nothing on `device`."""
    t0 = time.monotonic()
    writer, _ = open_writer(device, "ort", path)
    profiler = Profiler(device, writer, profile_settings(device, "ort"), workdir=path.parent / f"micro-{path.stem}")
    profiler.profile_model(model, name)
    return time.monotonic() - t0, profiler.measured


def draw_plans(model, analysis, step: int, configs: int, rng, folder: Path):
    """[(channels per layer, kept share, pruned .onnx)] of random pruned sub-networks."""
    plans = []
    for i in range(configs):
        keep, counts = random_keep(analysis, rng, step)
        path = folder / f"plan-{i}.onnx"
        save_model(prune(model, analysis, keep).proto, path)
        kept = sum(counts.values()) / sum(g.channels for g in analysis.prunable())
        plans.append((analysis.layer_channels(counts), kept, path))
    return plans


def carried_over(source, transferred, model) -> LatencyModel:
    """The transferred entries priced with the source's whole-model terms."""
    record = source.models[structure_key(model)]
    fit = transferred.header["transferred_from"]["fit"]
    fit = ScaleFit(**{**fit, "x_range": tuple(fit["x_range"])})
    rest = record["rest_ms"]
    rest *= fit.ratio(rest) if rest > 0 else math.exp(fit.a)
    return LatencyModel(transferred, model_layers(model), rest_ms=rest, scale=record.get("scale", 1.0))


def errors(predicted, timed, lut) -> tuple[list[float], list[float]]:
    nominal = lut.header.get("reference_ms")
    raw = [p / r.median_ms - 1 for p, r in zip(predicted, timed)]
    at_nominal = [p / normalized(r, nominal)[0] - 1 for p, r in zip(predicted, timed)]
    return raw, at_nominal


def run_model(name, onnx_path, args, device, source_device, rng, folder: Path) -> list[tuple]:
    model = load_model(onnx_path)
    print(f"\n{name}: load average " + " ".join(f"{v:.1f}" for v in os.getloadavg()))
    source_s, source_n = measure_lut(source_device, folder / "source.json", model, name)
    print(f"  source (2 threads): {source_n} entries measured in {source_s:.0f} s")
    scratch_s, scratch_n = measure_lut(device, folder / "scratch.json", model, name)
    scratch = load_lut(folder / "scratch.json")
    print(f"  scratch (1 thread): {scratch_n} entries measured in {scratch_s:.0f} s, step {scratch.channel_step}")
    t0 = time.monotonic()
    t = transfer_lut(folder / "source.json", device, "ort", folder / "transferred.json", args.anchors)
    transfer_s = time.monotonic() - t0
    transferred = load_lut(t.path)
    print(f"  transfer: {t.anchors} anchors measured, {t.transferred} entries transferred in {transfer_s:.0f} s; "
          f"anchors left out predicted within {t.fit.loo_error:.1%} (median)")

    analysis = analyze(model)
    # plans land on the steps of both LUTs (the host's sweep reads 8 or 16, FACTS.md): a plan
    # on the transferred LUT is made in its step, and such a count is one of the scratch LUT's too
    step = math.lcm(scratch.channel_step, transferred.channel_step)
    plans = draw_plans(model, analysis, step, args.configs, rng, folder)
    # one set of timings that every LUT is compared against
    timer = Profiler(device, open_writer(device, "ort", folder / "scratch.json")[0], profile_settings(device, "ort"),
                     workdir=folder / "micro-timing")
    tasks = [timer.model_file_task(path, f"{name}-{i}") for i, (_, _, path) in enumerate(plans)]
    by_id = timer.time_whole_models(tasks)
    timed = [by_id[task.id] for task in tasks]

    # the model's whole-model terms fitted here against the transferred entries (what
    # `profile --transfer-from OTHER --model M` does): whole-model timings, no entry measured
    shutil.copy(t.path, folder / "terms.json")
    t0 = time.monotonic()
    writer = open_writer(device, "ort", folder / "terms.json")[0]
    Profiler(device, writer, profile_settings(device, "ort"), workdir=folder / "micro-terms") \
        .measure_rest(model, model_layers(model), name)
    terms_s = time.monotonic() - t0
    terms = load_lut(folder / "terms.json")
    print(f"  whole-model terms fitted against the transferred entries in {terms_s:.0f} s")

    shutil.copy(folder / "terms.json", folder / "refined.json")
    refined_s, refined_n, refined_pred = 0.0, 0, []
    for channels, _, _ in plans:
        t0 = time.monotonic()
        r = refine(model, [channels], device, "ort", folder / "refined.json")
        refined_s += time.monotonic() - t0
        refined_n += r.measured
        refined_pred.append(LatencyModel.for_model(r.lut, model).predict_ms(channels))
    refined = load_lut(folder / "refined.json")
    still = sum(e.transferred for e in refined.entries.values())
    print(f"  refined: {refined_n} entries measured over {len(plans)} plans in {refined_s:.0f} s "
          f"({refined_s / len(plans):.1f} s a plan); {still} of {len(refined.entries)} entries still transferred")

    rows = []
    for label, lut, pred, seconds, entries in (
            ("scratch", scratch, None, scratch_s, scratch_n),
            ("transfer", transferred, None, transfer_s, t.anchors),
            ("transfer+terms", terms, None, transfer_s + terms_s, t.anchors),
            ("transfer+refined", refined, refined_pred, transfer_s + terms_s + refined_s, t.anchors + refined_n)):
        if pred is None:
            lm = carried_over(load_lut(folder / "source.json"), lut, model) if label == "transfer" \
                else LatencyModel.for_model(lut, model)
            pred = [lm.predict_ms(channels) for channels, _, _ in plans]
        rows.append((name, label, *errors(pred, timed, lut), seconds, entries))
    print(f"  {'cfg':>4} {'kept':>5} {'measured':>9} {'scratch':>8} {'transfer':>8} {'+terms':>8} {'refined':>8}")
    for i, ((_, kept, _), r) in enumerate(zip(plans, timed)):
        print(f"  {i:>4} {kept:>5.2f} {r.median_ms:>9.3f} " + " ".join(
            f"{row[2][i]:>+8.1%}" for row in rows))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="efficientnet_lite0,mobilenetv2")
    ap.add_argument("--configs", type=int, default=20)
    ap.add_argument("--anchors", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="lut-transfer-") as tmp:
        tmp = Path(tmp)
        device = open_device("host")
        source_device = open_device(str(source_profile(tmp)))
        try:
            print(f"new device: host ({device.profile.description}), 1 thread; source: the same CPU at 2 threads; "
                  f"{args.anchors} anchors, {args.configs} random plans per model")
            for _, name, onnx_path in subjects(args.models.split(","), 0, tmp):
                folder = tmp / name
                folder.mkdir()
                rows += run_model(name, onnx_path, args, device, source_device, rng, folder)
        finally:
            device.close()
            source_device.close()
    print("\nload average (1, 5, 15 min) at the end: " + " ".join(f"{v:.1f}" for v in os.getloadavg()))
    print("Prediction error of each LUT on the same timed plans: against the measured median, and (at nominal)")
    print("that median at the LUT's nominal speed; device time: what the LUT's measurements took on the new device.")
    print(f"{'model':<19}{'LUT':<18}{'measured: within ±10%  ±5%  mean|e|  max|e|':<44}"
          f"{'at nominal: within ±10%  ±5%  mean|e|  max|e|':<47}{'entries':>8}{'device s':>9}")
    for name, label, raw, nominal, seconds, entries in rows:
        print(f"{name:<19}{label:<18}{_shares(raw):<44}{_shares(nominal):<47}{entries:>8}{seconds:>9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
