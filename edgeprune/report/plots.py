"""plots/*.png with matplotlib's Agg backend (no display): channels kept per layer, predicted
latency per layer before and after, and fidelity against latency when several budgets were
asked for (`--sweep`). Returns {relative path: title} for the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

# fixed metadata: the same figure gives the same bytes
_META = {"Software": None}


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata=_META)
    plt.close(fig)


def channels_plot(m: dict[str, Any], path: Path) -> None:
    groups = list(m["plan"]["groups"].values())
    fig, ax = plt.subplots(figsize=(max(6, 0.18 * len(groups)), 3.6))
    x = range(len(groups))
    ax.bar(x, [g["total"] for g in groups], color="#d0d7de", label="dense")
    ax.bar(x, [g["kept"] for g in groups], color="#2f81f7", label="kept")
    ax.set_xlabel("channel group (graph order)")
    ax.set_ylabel("channels")
    ax.set_title(f"Channels kept per group — budget {m['budget']['text']}")
    ax.legend()
    _save(fig, path)


def latency_plot(m: dict[str, Any], path: Path) -> bool:
    before, after = m["latency_ms"].get("layers_before"), m["latency_ms"].get("layers_after")
    if not before:
        return False
    names = list(before)
    fig, ax = plt.subplots(figsize=(max(6, 0.18 * len(names)), 3.6))
    x = range(len(names))
    ax.bar(x, [before[n] for n in names], color="#d0d7de", label="dense")
    if after:
        ax.bar(x, [after.get(n, 0.0) for n in names], color="#1a7f37", width=0.5, label="pruned")
    ax.set_xlabel("fused layer (graph order)")
    ax.set_ylabel("predicted latency (ms)")
    est = " (estimated)" if m["latency_ms"].get("estimated") else ""
    ax.set_title(f"Latency per layer on {m['target']['device']}{est}")
    ax.legend()
    _save(fig, path)
    return True


def fidelity_plot(m: dict[str, Any], path: Path) -> bool:
    points = [p for p in m.get("sweep") or [] if p.get("fidelity") and p.get("predicted_ms") is not None]
    stages = (m.get("fidelity") or {}).get("stages") or {}
    main = stages.get("finetuned") or stages.get("recovered") or stages.get("pruned")
    if main:
        points.append({"budget": m["budget"]["text"], "predicted_ms": m["latency_ms"]["predicted"],
                       "fidelity": main})
    if len(points) < 2:
        return False
    points.sort(key=lambda p: p["predicted_ms"])
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    xs = [p["predicted_ms"] for p in points]
    ys = [p["fidelity"].get("score", p["fidelity"]["top1_agreement"]) or 0.0 for p in points]
    ax.plot(xs, ys, "o-", color="#8250df")
    for p, x, y in zip(points, xs, ys):
        ax.annotate(p["budget"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("predicted latency (ms)")
    ax.set_ylabel(f"{points[-1]['fidelity'].get('metric', 'top-1 agreement')} with dense (fp32)")
    ax.set_ylim(0, 1.05)
    ax.set_title("Fidelity against latency")
    _save(fig, path)
    return True


def write_plots(m: dict[str, Any], folder: Path) -> dict[str, str]:
    made = {}
    channels_plot(m, folder / "channels.png")
    made["plots/channels.png"] = "channels kept per layer"
    if latency_plot(m, folder / "latency.png"):
        made["plots/latency.png"] = "latency per layer, before and after"
    if fidelity_plot(m, folder / "fidelity.png"):
        made["plots/fidelity.png"] = "fidelity against latency"
    return made
