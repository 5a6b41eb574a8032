"""report.md: budget against predicted and measured latency and energy, the gates, fidelity
per stage, the per-layer plan and how the artifact was verified. Plain GitHub markdown, so a
CI job can append it to $GITHUB_STEP_SUMMARY as it is."""

from __future__ import annotations

from typing import Any


def _f(v, digits: int = 3, unit: str = "") -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}{unit}"
    return f"{v}{unit}"


def _g4(v) -> str:
    return "—" if v is None else f"{v:.4g}"


def _g(v) -> str:
    return "—" if v is None else f"{v:.3g}"


def _ratio(a, b) -> str:
    return "—" if a is None or not b else f"{a / b:.2f}x"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _human(n: int) -> str:
    for unit in ("", "K", "M", "G"):
        if abs(n) < 1000:
            return f"{n:.1f}{unit}" if unit else str(n)
        n /= 1000
    return f"{n:.1f}T"


STAGES = ("pruned", "recovered", "finetuned", "int8", "artifact")


def stages(m: dict[str, Any]) -> dict[str, Any]:
    """Fidelity per stage in pipeline order (the manifest's keys are sorted)."""
    found = (m.get("fidelity") or {}).get("stages") or {}
    return {k: found[k] for k in (*STAGES, *sorted(set(found) - set(STAGES))) if k in found}


_METRIC_WHY = {
    "top-1 agreement": "the first output has a class axis: the share of samples (and positions, "
                       "for class maps) where dense and pruned pick the same class",
    "box recall at IoU 0.5": "a YOLO-style detection output: boxes decoded from both models (score "
                             "≥ 0.25, per-class NMS), the mean share of the dense model's boxes "
                             "matched by a box of the same class at IoU ≥ 0.5",
    "cosine similarity": "no output has a class axis or decodable boxes: the lowest, over the "
                         "outputs, of the mean per-sample cosine similarity to the dense output",
}


def _pct(v) -> str:
    return "—" if v is None else f"{v:.1%}"


def _score(v: dict[str, Any], named: bool = False) -> str:
    score = v.get("score", v.get("top1_agreement"))
    text = "—" if score is None else (f"{score:.3f}" if v.get("metric") == "cosine similarity" else f"{score:.1%}")
    return f"{v.get('metric', 'top-1 agreement')} {text}" if named else text


def _interval(v: dict[str, Any]) -> str:
    """The 95% Wilson interval of a stage's top-1 agreement, e.g. "62.1–84.3%"."""
    iv = v.get("top1_interval")
    return "—" if not iv else f"{iv[0]:.1%}–{iv[1]:.1%}"


def _score_ci(v: dict[str, Any]) -> str:
    """The judged figure, with the 95% interval beside a top-1 agreement."""
    text = _score(v)
    if v.get("metric", "top-1 agreement") == "top-1 agreement" and v.get("top1_interval"):
        text += f" [{_interval(v)}]"
    return text


def _per_output(found: dict[str, Any]) -> list[str]:
    """Every output of the last stage measured: its kind and each metric that applies."""
    last = next((found[s] for s in ("artifact", "int8", "finetuned", "recovered", "pruned") if s in found), None)
    if not last or not last.get("outputs"):
        return []
    which = next(s for s in ("artifact", "int8", "finetuned", "recovered", "pruned") if s in found)
    rows = []
    for o in last["outputs"]:
        boxes = "—" if o.get("box_recall") is None else \
            f"{o['box_recall']:.1%} recall, {_pct(o.get('box_precision'))} precision ({o.get('dense_boxes')} dense boxes)"
        if o["kind"] in ("detection", "nms") and o.get("box_recall") is None:
            boxes = "no dense boxes at score ≥ 0.25"
        rows.append([str(o["index"]), "x".join(map(str, o["shape"])), o["kind"], f"{o['relative_error']:.4g}",
                     f"{o['cosine']:.4f}", _pct(o.get("top1_agreement")), _interval(o),
                     _pct(o.get("top5_agreement")), boxes])
    return ["", f"Per output ({which}):", ""] + _table(
        ["output", "shape", "kind", "relative error", "cosine", "top-1 agreement", "95% interval",
         "top-5 agreement", "boxes"], rows)


def headline(m: dict[str, Any]) -> list[str]:
    """The few lines `make demo` and CI logs print."""
    lat, en = m["latency_ms"], m["energy_mj"]
    lines = [f"latency: dense {_f(lat['dense_predicted'])} ms predicted"
             + (f" ({_f(lat.get('dense_measured'))} ms measured)" if lat.get("dense_measured") else "")
             + f" → {_f(lat['predicted'])} ms predicted"
             + (f", {_f(lat['measured_median'])} ms measured (p90 {_f(lat['measured_p90'])} ms)"
                if lat.get("measured_median") is not None else ", not measured")
             + f" on {m['target']['device']}"
             + (" (estimated: roofline prior)" if lat.get("estimated") else "")]
    if lat.get("speedup_measured"):
        lines.append(f"measured speed-up over dense: {lat['speedup_measured']:.2f}x")
    lines.append(f"energy: {_f(en['predicted'])} mJ predicted ({en['predicted_source']})"
                 + (f", {_f(en['measured'])} mJ measured ({en['measured_source']})" if en.get("measured") else ""))
    fid = stages(m)
    if fid:
        metric = next(iter(fid.values())).get("metric", "top-1 agreement")
        ci = " [95% interval]" if metric == "top-1 agreement" else ""
        lines.append(f"fidelity ({metric}{ci} with dense): "
                     + ", ".join(f"{k} {_score_ci(v)}" for k, v in fid.items()))
    else:
        lines.append("fidelity: not measured (no DATA)")
    gates = m.get("gates") or {}
    if gates:
        lines.append("gates: " + ", ".join(f"{g['flag']} {'held' if g['passed'] else 'FAILED'}"
                                           for g in gates.values()))
    return lines


def _closed_loop(lat: dict[str, Any]) -> list[str]:
    """How the plan was fitted on the device: each round's planning limit, the LUT's
    prediction and the candidate as it ships, measured beside the dense model."""
    loop, rt = lat.get("closed_loop") or {}, lat.get("runtime")
    out = []
    if rt:
        out += [f"Runtime configuration (LUT entries, dense reference and artifact alike): "
                f"{rt.get('backend')}, optimisation `{rt.get('optimization')}`, {rt.get('threads')} thread(s)"
                + (f", session entries {rt.get('session_config')}" if rt.get("session_config") else "") + ".", ""]
    if loop.get("not_measured"):
        return out + [f"The budget was fitted on predictions only: {loop['not_measured']}.", ""]
    rounds = loop.get("rounds") or []
    if rounds:
        out += ["Plans fitted on the device, each built as it ships and timed beside the dense model "
                f"(dense as it ships: {_f(loop.get('dense_measured_ms'))} ms; target {_f(loop.get('target_ms'))} ms):", ""]
        out += _table(["round", "planning limit (ms)", "predicted (ms)", "measured (ms)", "note"], [
            [str(i + 1), _f(r.get("limit_ms")), _f(r.get("predicted_ms")), _f(r.get("measured_ms")),
             "the dense model" if r.get("dense_plan") else f"dense beside it {_f(r.get('dense_beside_ms'))} ms"]
            for i, r in enumerate(rounds)]) + [""]
    return out


def _finetune(f: dict[str, Any] | None) -> list[str]:
    """What `--finetune-steps` did: `finetuned` is the recovered model after it."""
    if not f:
        return []
    return ["", f"Fine-tuning: {f['steps']} distillation steps from the dense model on "
                f"{f['calibration_samples']} calibration samples ({f['trained_initializers']} initializers "
                f"trained in place); distillation loss there {f['loss_before']:.4g} → {f['loss_after']:.4g}"
                + (". `finetuned` is the model that ships." if f["kept"] else
                   ": not lower, so the recovered weights ship.")]


def _kernels(k: dict[str, Any] | None) -> list[str]:
    if not k or k.get("ops") is None:
        return []
    ops = ", ".join(f"{n} {op}" for op, n in sorted(k["ops"].items(), key=lambda t: -t[1])[:8])
    floats = k.get("float_convs") or []
    return [f"Kernels the runtime runs ({k.get('runtime')}): {ops}"
            + (f"; convolutions in float: {', '.join(floats[:5])}" if floats else "") + ".", ""]


def render(m: dict[str, Any]) -> str:
    src, tgt, lat, en, b = m["source"], m["target"], m["latency_ms"], m["energy_mj"], m["budget"]
    name = src["path"].rsplit("/", 1)[-1]
    out = [f"# edgeprune: {name} → {tgt['device']} ({tgt['backend']}"
           + (", int8" if m.get("quantize", {}).get("mode") == "int8" else "") + ")", ""]
    out += [f"- {line}" for line in headline(m)] + [""]

    out += ["## Budget, predicted and measured", ""]
    est = " (estimated: roofline prior)" if lat.get("estimated") else ""
    out += _table(["", "budget", "dense", "predicted", "measured median", "measured p90"], [
        ["latency (ms)", f"{b['text']} → {_f(b.get('limit_ms'))}" if b.get("limit_ms") else "—",
         f"{_f(lat['dense_predicted'])} pred. / {_f(lat.get('dense_measured'))} meas.",
         _f(lat["predicted"]) + est, _f(lat["measured_median"]), _f(lat["measured_p90"])],
        ["energy (mJ)", _f(b.get("limit_mj")), f"{_f(en.get('dense_predicted'))} pred.",
         f"{_f(en['predicted'])} ({en['predicted_source']})",
         f"{_f(en['measured'])} ({en['measured_source']})" if en.get("measured") is not None
         else f"— ({en['not_measured']})" if en.get("not_measured") else "— (no sensor)", "—"],
    ])
    if lat.get("predicted_int8"):
        out += ["", f"The plan is priced on the LUT's int8 entries (QDQ micro-models as the runtime "
                    f"fuses them); the shipped int8 model's LUT prediction is {_f(lat['predicted_int8'])} ms."]
    if m["verify"].get("not_measured"):
        out += ["", f"Not measured on the device: {m['verify']['not_measured']}.", ""]
    else:
        out += ["", f"Measured on `{lat.get('measured_on') or '—'}` with the LUT's pinning and clock "
                    f"({m['verify'].get('clock', '—')} clock, {m['verify'].get('threads', '—')} thread(s)).", ""]
    out += _closed_loop(lat) + _kernels(m.get("kernels"))

    gates = m.get("gates") or {}
    out += ["## Gates", ""]
    if gates:
        out += _table(["gate", "limit", "value", "how", "result"], [
            [g["flag"], _g4(g["limit"]), _g4(g["value"]), g.get("source", ""),
             "✅ held" if g["passed"] else "❌ failed"] for g in gates.values()])
    else:
        out += ["No gates were set (`--max-latency`, `--max-energy`, `--min-fidelity`, `--max-size`)."]
    out += [""]

    out += ["## Fidelity against the dense model", ""]
    fid = m.get("fidelity")
    if fid:
        d = fid["data"]
        out += [f"On {d.get('evaluation_samples')} {d.get('evaluation')} samples of DATA "
                f"({d.get('samples')} in all, {d.get('calibration')} used for calibration).", ""]
        found = stages(m)
        metric = next(iter(found.values())).get("metric", "top-1 agreement") if found else "top-1 agreement"
        if metric == "top-1 agreement":
            out += [f"`--min-fidelity` judges the **lower bound of the 95% Wilson interval** of "
                    f"**{metric}** ({_METRIC_WHY[metric]}), not the point estimate.", ""]
            head = ["stage", metric, "95% interval (Wilson)"]
        else:
            out += [f"`--min-fidelity` judges **{metric}** ({_METRIC_WHY.get(metric, '')}).", ""]
            head = ["stage", metric, "top-1 agreement", "95% interval (Wilson)"]
        out += _table(head + ["top-5 agreement", "max abs error", "samples"], [
            [k, _score(v)] + ([] if metric == "top-1 agreement" else [_pct(v.get("top1_agreement"))])
            + [_interval(v), _pct(v.get("top5_agreement")), f"{v['max_abs_error']:.4g}", str(v["samples"])]
            for k, v in found.items()])
        out += _finetune(m.get("finetune"))
        out += _per_output(found)
    else:
        out += ["**No DATA was given**: only data-free criteria ran (importance: "
                f"`{m['plan']['criterion']}`), there was no recovery or int8 calibration, and "
                "fidelity was not measured. The artifact's outputs were checked against its model "
                "on seeded random inputs."]
    out += [""]

    out += ["## Model", ""]
    out += _table(["", "before", "after", "ratio"], [
        ["MACs", _human(m["macs"]["before"]), _human(m["macs"]["after"]), _ratio(m["macs"]["after"], m["macs"]["before"])],
        ["parameters", _human(m["params"]["before"]), _human(m["params"]["after"]),
         _ratio(m["params"]["after"], m["params"]["before"])],
    ])
    q = m.get("quantize") or {}
    if q.get("mode") == "int8":
        out += ["", f"int8: static QDQ, {q.get('calibration')}."]
    out += [""]

    out += ["## Plan per layer", "", f"Criterion `{m['plan']['criterion']}`, "
            f"{m['plan'].get('importance_kept', 0):.1%} of the importance kept.", ""]
    rows = []
    for gid, g in m["plan"]["groups"].items():
        mark = "" if g["kept"] == g["total"] else " ✂"
        rows.append([gid, f"`{g['name']}`", f"{g['kept']} / {g['total']}", f"{g['kept'] / g['total']:.0%}{mark}"])
    out += _table(["group", "layer", "kept / total", "kept"], rows) + [""]

    v = m["verify"]
    out += ["## Verification", ""]
    out.append(f"- inputs: {v.get('inputs')}")
    out.append(f"- artifact on this host vs the model it was built from: max abs error "
               f"{_g(v.get('artifact_vs_model_max_abs_error'))}" + (f" ({v['host_run']})" if v.get("host_run") else ""))
    if "device_outputs_max_abs_error" in v:
        out.append(f"- outputs returned by the device vs the host reference: max abs error "
                   f"{_g(v.get('device_outputs_max_abs_error'))}")
    out.append(f"- deployed files: {', '.join(f'`{f}`' for f in v.get('deployed_files', []))}")
    lut = m.get("lut") or {}
    if lut.get("kind") == "lut":
        out.append(f"- LUT: `{lut.get('path')}` ({lut.get('entries')} entries, {lut.get('measured_now')} "
                   f"measured by this run, channel step {lut.get('channel_step')})")
    out += [""]

    plots = m.get("plots") or {}
    if plots:
        out += ["## Plots", ""]
        out += [f"![{title}]({path})" for path, title in plots.items()] + [""]
    if m.get("sweep"):
        out += ["## Budget sweep", ""]
        out += _table(["budget", "predicted ms", "fidelity"], [
            [p["budget"], _f(p.get("predicted_ms")),
             _score(p["fidelity"], named=True) if p.get("fidelity") else p.get("infeasible", "—")]
            for p in m["sweep"]]) + [""]
    if m.get("notes"):
        out += ["## Notes", ""] + [f"- {n}" for n in m["notes"]] + [""]
    return "\n".join(out)
