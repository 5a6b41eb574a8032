"""What each model output is, read from its shape, and YOLO-style box decoding.

Fidelity and Taylor importance both need to know what an output means:

- `classes`   — a class axis at axis 1: `[N, K]` logits (K ≥ 2) or a dense `[N, K, H, W]`
  map of class scores (semantic segmentation). Compared by top-1 agreement.
- `detection` — a YOLO-style head: `[N, 4 + C, A]` (YOLOv8: cx, cy, w, h in pixels, then C
  class scores, A anchors ≫ 4 + C) or `[N, A, 5 + C]` (YOLOv5: with an objectness column).
  Compared by decoding boxes and matching them to the dense model's (IoU ≥ 0.5).
- `nms`       — boxes after non-maximum suppression in the graph, `[N, K, 6]` or `[N, K, 7]`
  (x1, y1, x2, y2, score, class[, …]) with K small. Matched like decoded boxes.
- `dense`     — anything else (a one-channel heat map `[N, 1, H, W]`, a channels-last score
  map such as CRAFT's `[N, H, W, 2]`, embeddings, regressions). Compared by cosine
  similarity and relative error.

Shapes can only suggest: a `[N, 32, H, W]` feature map reads as 32 classes. The report names
the kind found and the metric used for each output, so a wrong guess is visible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASSES, DETECTION, NMS, DENSE = "classes", "detection", "nms", "dense"
CONF = 0.25          # score threshold for a decoded box
NMS_IOU = 0.45       # boxes overlapping a better one of the same class more than this are dropped
MATCH_IOU = 0.5      # a dense box is recalled by a candidate box of its class at this IoU
MAX_BOXES = 300      # per sample, after NMS
_MAX_CLASSES = 1000


@dataclass(frozen=True)
class Kind:
    kind: str
    layout: str = ""          # detection: "v8" ([N, 4+C, A]) or "v5" ([N, A, 5+C])

    def describe(self) -> str:
        return {CLASSES: "class scores on axis 1", DETECTION: f"YOLO-style boxes ({self.layout} layout)",
                NMS: "boxes after in-graph NMS", DENSE: "dense values"}[self.kind]


def kind_of(shape: tuple[int, ...], input_hw: tuple[int, int] | None = None) -> Kind:
    """The kind of an output of `shape` (batch first), for inputs of spatial size `input_hw`."""
    shape = tuple(int(d) for d in shape)
    if len(shape) == 3:
        a, b = shape[1], shape[2]
        if b in (6, 7) and a <= MAX_BOXES * 4 and a > b:
            return Kind(NMS)
        if 5 <= a <= 4 + _MAX_CLASSES and b >= 4 * a and b >= 16:
            return Kind(DETECTION, "v8")
        if 6 <= b <= 5 + _MAX_CLASSES and a >= 4 * b and a >= 16:
            return Kind(DETECTION, "v5")
    if len(shape) == 2 and shape[1] >= 2:
        return Kind(CLASSES)
    if len(shape) == 4 and 2 <= shape[1] <= _MAX_CLASSES and not _channels_last(shape, input_hw):
        return Kind(CLASSES)
    return Kind(DENSE)


def _channels_last(shape: tuple[int, ...], input_hw: tuple[int, int] | None) -> bool:
    """[N, H, W, C]: axes 1 and 2 look spatial (a fraction of the input's size) and C is small."""
    _, h, w, c = shape
    if input_hw is not None and input_hw[0] and input_hw[1]:
        ih, iw = input_hw
        spatial = any(h * f == ih and w * f == iw for f in (1, 2, 4, 8, 16, 32))
        return spatial and c < h
    return c < min(h, w) and c <= 4 < h


def input_hw(input_shapes) -> tuple[int, int] | None:
    """Spatial size of the first 4-D (NCHW) input, if any."""
    for shape in (input_shapes or {}).values():
        if len(shape) == 4:
            return int(shape[2]), int(shape[3])
    return None


# --------------------------------------------------------------------------- boxes
def _sigmoid_if_logits(x: np.ndarray) -> np.ndarray:
    return x if x.size == 0 or (x.min() >= 0 and x.max() <= 1) else 1 / (1 + np.exp(-x))


def decode(output: np.ndarray, kind: Kind, conf: float = CONF) -> list[np.ndarray]:
    """Per sample, boxes as rows (x1, y1, x2, y2, score, class) after per-class NMS."""
    out = np.asarray(output, dtype=np.float64)
    result = []
    for sample in out:
        if kind.kind == NMS:
            rows = sample[:, :6]
            rows = rows[rows[:, 4] >= conf]
            result.append(rows[np.argsort(-rows[:, 4], kind="stable")][:MAX_BOXES])
            continue
        rows = sample.T if kind.layout == "v8" else sample          # [A, columns]
        xywh = rows[:, :4]
        if kind.layout == "v5":
            obj = _sigmoid_if_logits(rows[:, 4])
            cls = _sigmoid_if_logits(rows[:, 5:]) * obj[:, None]
        else:
            cls = _sigmoid_if_logits(rows[:, 4:])
        label = cls.argmax(1)
        score = cls[np.arange(len(cls)), label]
        keep = score >= conf
        xyxy = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], 1)
        boxes = np.concatenate([xyxy[keep], score[keep, None], label[keep, None].astype(np.float64)], 1)
        result.append(nms(boxes))
    return result


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in `a` [n, 4+] against every box in `b` [m, 4+] (x1, y1, x2, y2)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:4], b[None, :, 2:4])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: np.clip(x[:, 2] - x[:, 0], 0, None) * np.clip(x[:, 3] - x[:, 1], 0, None)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(boxes: np.ndarray, threshold: float = NMS_IOU, limit: int = MAX_BOXES) -> np.ndarray:
    """Greedy per-class NMS over rows (x1, y1, x2, y2, score, class), best first."""
    order = np.argsort(-boxes[:, 4], kind="stable")
    boxes = boxes[order]
    kept: list[int] = []
    suppressed = np.zeros(len(boxes), dtype=bool)
    for i in range(len(boxes)):
        if suppressed[i]:
            continue
        kept.append(i)
        if len(kept) == limit:
            break
        rest = np.arange(i + 1, len(boxes))
        same = rest[boxes[rest, 5] == boxes[i, 5]]
        if len(same):
            suppressed[same[iou(boxes[i:i + 1], boxes[same])[0] > threshold]] = True
    return boxes[kept]


def match(reference: np.ndarray, candidate: np.ndarray, threshold: float = MATCH_IOU) -> int:
    """How many reference boxes a candidate box of the same class covers at IoU ≥ threshold
    (greedy, best-scored reference first, each candidate box used once)."""
    if not len(reference) or not len(candidate):
        return 0
    overlap = iou(reference, candidate)
    overlap[reference[:, 5][:, None] != candidate[:, 5][None, :]] = 0
    used = np.zeros(len(candidate), dtype=bool)
    hits = 0
    for i in np.argsort(-reference[:, 4], kind="stable"):
        row = np.where(used, -1, overlap[i])
        j = int(row.argmax())
        if row[j] >= threshold:
            used[j] = True
            hits += 1
    return hits


@dataclass(frozen=True)
class BoxAgreement:
    recall: float | None      # mean over samples where the dense model found boxes
    precision: float | None   # mean over samples where the candidate found boxes
    dense_boxes: int
    candidate_boxes: int
    samples_with_boxes: int


def box_agreement(reference: np.ndarray, candidate: np.ndarray, kind: Kind) -> BoxAgreement:
    """Mean IoU-matched recall (and precision) of the candidate's boxes against the dense model's."""
    ref, cand = decode(reference, kind), decode(candidate, kind)
    recalls, precisions = [], []
    for r, c in zip(ref, cand):
        hits = match(r, c)
        if len(r):
            recalls.append(hits / len(r))
        if len(c):
            precisions.append(hits / len(c))
    return BoxAgreement(float(np.mean(recalls)) if recalls else None,
                        float(np.mean(precisions)) if precisions else None,
                        sum(len(r) for r in ref), sum(len(c) for c in cand), len(recalls))
