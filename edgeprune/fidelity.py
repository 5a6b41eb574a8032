"""How closely a candidate (pruned, recovered, int8) model follows the dense model.

Every output is compared by its **relative error** (‖candidate − dense‖ / ‖dense‖ over all
its values) and its **cosine similarity** (per sample, then averaged); an output with a
class axis (`edgeprune.outputs`: `[N, K]` logits or a `[N, K, H, W]` class map) also by
**top-1 agreement** (the fraction of samples, and positions for dense maps, where the argmax
over axis 1 is the same); a YOLO-style detection output by **box recall**: boxes decoded
from both models (score ≥ 0.25, per-class NMS), and the mean over samples of the share of
the dense model's boxes a candidate box of the same class covers at IoU ≥ 0.5.

One figure is the fidelity `--min-fidelity` judges (`metric` and `score`), by what the
outputs are:
1. a detection output on which the dense model finds boxes → box recall at IoU 0.5;
2. else a first output with a class axis → its top-1 agreement (classifiers, segmenters
   with class maps);
3. else → cosine similarity, the lowest over the outputs (heat maps, regressions).
Max abs error is the largest difference over every output value. All are measured on the
same inputs with ONNX Runtime on the host.

Beside each top-1 agreement stands its 95% Wilson score interval over the samples (for a
class map, the map's agreement counts as that share of one sample: positions of one image are
not independent trials), and, where the class axis has at least 5 classes, the **top-5
agreement** (the share where the dense model's top-1 class is among the candidate's top 5).
When the judged metric is top-1 agreement, `--min-fidelity` judges the interval's lower
bound (`judged`), not the point estimate: 62.5% on 16 samples is 39–82% at 95%.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import math

import numpy as np
import onnx

from .frontend.load import Model
from .outputs import CLASSES, DETECTION, MATCH_IOU, NMS, box_agreement, kind_of
from .recover.probe import Calib, Probe

TOP1 = "top-1 agreement"
BOX_RECALL = f"box recall at IoU {MATCH_IOU}"
COSINE = "cosine similarity"
Z95 = 1.959963984540054  # the standard normal's 97.5% quantile: a two-sided 95% interval
TOP5_MIN_CLASSES = 5


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion `successes / n` (95% by default).

    Unlike the normal approximation it stays inside [0, 1] and is not empty at 0% or 100%:
    10 of 10 gives (0.722, 1.0). `successes` may be fractional (a class map's agreement).
    With n = 0 it is (0, 1): nothing is known.
    """
    if n <= 0:
        return 0.0, 1.0
    p = min(max(successes / n, 0.0), 1.0)
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class OutputFidelity:
    """One output compared with the dense model's."""

    index: int
    shape: tuple[int, ...]
    kind: str                           # edgeprune.outputs: classes, detection, nms, dense
    relative_error: float
    cosine: float
    top1_agreement: float | None = None  # only where the output has a class axis
    box_recall: float | None = None      # only for detection outputs where dense found boxes
    box_precision: float | None = None
    dense_boxes: int | None = None
    top1_interval: tuple[float, float] | None = None  # 95% Wilson, beside top1_agreement
    top5_agreement: float | None = None  # only where the class axis has >= 5 classes

    def to_json(self) -> dict:
        out = {"index": self.index, "shape": list(self.shape), "kind": self.kind,
               "relative_error": self.relative_error, "cosine": self.cosine}
        for key in ("top1_agreement", "top1_interval", "top5_agreement", "box_recall", "box_precision",
                    "dense_boxes"):
            if getattr(self, key) is not None:
                value = getattr(self, key)
                out[key] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True)
class Fidelity:
    top1_agreement: float | None   # of the first output, where it has a class axis
    max_abs_error: float
    samples: int
    metric: str = TOP1             # what `score` is, and what --min-fidelity judges
    score: float | None = None     # in [0, 1]
    outputs: tuple[OutputFidelity, ...] = field(default=(), compare=False)
    top1_interval: tuple[float, float] | None = None  # 95% Wilson interval of top1_agreement
    top5_agreement: float | None = None               # of the first output, >= 5 classes

    def __post_init__(self):
        if self.score is None and self.top1_agreement is not None and self.metric == TOP1:
            object.__setattr__(self, "score", self.top1_agreement)
        if self.top1_interval is None and self.top1_agreement is not None:
            object.__setattr__(self, "top1_interval", wilson_interval(self.top1_agreement * self.samples,
                                                                      self.samples))

    @property
    def judged(self) -> float | None:
        """What --min-fidelity compares with its limit (see `judged`)."""
        return judged(self.to_json())[0]

    def to_json(self) -> dict:
        out = {"top1_agreement": self.top1_agreement, "max_abs_error": self.max_abs_error,
               "samples": self.samples}
        if self.top1_interval is not None:
            out["top1_interval"] = list(self.top1_interval)
        if self.top5_agreement is not None:
            out["top5_agreement"] = self.top5_agreement
        if self.outputs:
            out.update({"metric": self.metric, "score": self.score,
                        "outputs": [o.to_json() for o in self.outputs]})
        return out


def outputs(model: Model | onnx.ModelProto, data: Calib) -> list[np.ndarray]:
    """Every graph output of `model` over `data` (samples stacked on axis 0)."""
    proto = model.proto if isinstance(model, Model) else model
    probe = Probe(proto, [o.name for o in proto.graph.output])
    chunks = list(probe.chunks(data, samples_per_chunk=64))
    return [np.concatenate(parts, axis=0) for parts in zip(*chunks)]


def _cosine(r: np.ndarray, c: np.ndarray) -> float:
    r, c = r.reshape(len(r), -1), c.reshape(len(c), -1)
    nr, nc = np.linalg.norm(r, axis=1), np.linalg.norm(c, axis=1)
    dot = np.sum(r * c, axis=1)
    both_zero = (nr == 0) & (nc == 0)
    cos = np.where(both_zero, 1.0, dot / np.maximum(nr * nc, 1e-300))
    return float(np.mean(np.clip(cos, -1.0, 1.0))) if len(cos) else 1.0


def _relative_error(r: np.ndarray, c: np.ndarray) -> float:
    ref = float(np.linalg.norm(r))
    diff = float(np.linalg.norm(c - r))
    return diff / ref if ref > 0 else (0.0 if diff == 0 else float("inf"))


def compare_output(index: int, ref: np.ndarray, cand: np.ndarray) -> OutputFidelity:
    r, c = ref.astype(np.float64), cand.astype(np.float64)
    kind = kind_of(ref.shape)
    top1 = recall = precision = boxes = interval = top5 = None
    if kind.kind == CLASSES:
        top1 = float(np.mean(ref.argmax(1) == cand.argmax(1)))
        samples = len(ref)
        interval = wilson_interval(top1 * samples, samples)
        if ref.shape[1] >= TOP5_MIN_CLASSES:
            top5 = _top5_agreement(ref, cand)
    if kind.kind in (DETECTION, NMS):
        agreement = box_agreement(ref, cand, kind)
        recall, precision, boxes = agreement.recall, agreement.precision, agreement.dense_boxes
    return OutputFidelity(index, tuple(int(d) for d in ref.shape), kind.kind, _relative_error(r, c),
                          _cosine(r, c), top1, recall, precision, boxes, interval, top5)


def _top5_agreement(ref: np.ndarray, cand: np.ndarray) -> float:
    """The share of samples (and positions of class maps) where the dense model's top-1 class
    is among the candidate's five highest scores (class axis 1)."""
    dense_top1 = np.expand_dims(ref.argmax(1), 1)
    cand_top5 = np.argpartition(-cand, 4, axis=1)[:, :5]
    return float(np.mean(np.any(cand_top5 == dense_top1, axis=1)))


def compare(reference: list[np.ndarray], candidate: list[np.ndarray]) -> Fidelity:
    if len(reference) != len(candidate):
        raise ValueError(f"{len(reference)} reference outputs, {len(candidate)} candidate outputs")
    for r, c in zip(reference, candidate):
        if r.shape != c.shape:
            raise ValueError(f"output shapes differ: {r.shape} vs {c.shape}")
    per = tuple(compare_output(i, r, c) for i, (r, c) in enumerate(zip(reference, candidate)))
    err = max(float(np.max(np.abs(r.astype(np.float64) - c.astype(np.float64)), initial=0.0))
              for r, c in zip(reference, candidate))
    samples = len(reference[0]) if reference[0].ndim else 1
    first = per[0]
    detected = next((o for o in per if o.box_recall is not None), None)
    if detected is not None:
        metric, score = BOX_RECALL, detected.box_recall
    elif first.top1_agreement is not None:
        metric, score = TOP1, first.top1_agreement
    else:
        metric, score = COSINE, max(0.0, min(o.cosine for o in per))
    return Fidelity(first.top1_agreement, err, samples, metric, score, per, first.top1_interval,
                    first.top5_agreement)


def fidelity(dense: Model | onnx.ModelProto, candidate: Model | onnx.ModelProto, data: Calib) -> Fidelity:
    """Per-output agreement and max abs error of `candidate` against `dense` on `data`."""
    return compare(outputs(dense, data), outputs(candidate, data))


def judged(f: Mapping) -> tuple[float | None, str]:
    """(value, what it is) that --min-fidelity compares with its limit, from a Fidelity's JSON:
    for top-1 agreement the lower bound of its 95% Wilson interval, otherwise the score."""
    metric = f.get("metric", TOP1)
    score = f.get("score", f.get("top1_agreement"))
    interval = f.get("top1_interval")
    if metric == TOP1 and score is not None and interval is None and f.get("samples"):
        interval = wilson_interval(score * f["samples"], int(f["samples"]))
    if metric == TOP1 and interval is not None:
        return float(interval[0]), (f"lower bound of the 95% Wilson interval of {metric} "
                                    f"({score:.1%}, interval {interval[0]:.1%}–{interval[1]:.1%})")
    return score, metric


def describe(f: Mapping) -> str:
    """One line for a Fidelity's JSON: the judged metric and its value (with the 95% interval
    and top-5 agreement where they apply)."""
    metric = f.get("metric", TOP1)
    score = f.get("score", f.get("top1_agreement"))
    if score is None:
        return f"{metric} —"
    text = f"{metric} {score:.1%}"
    if metric == TOP1 and f.get("top1_interval"):
        lo, hi = f["top1_interval"]
        text += f" (95% CI {lo:.1%}–{hi:.1%})"
    if f.get("top5_agreement") is not None:
        text += f", top-5 {f['top5_agreement']:.1%}"
    return text


def accuracy(model: Model | onnx.ModelProto, data: Mapping[str, np.ndarray], labels: np.ndarray) -> float:
    """Top-1 accuracy of the first output against integer labels."""
    logits = outputs(model, data)[0]
    return float(np.mean(logits.argmax(1) == np.asarray(labels)))
