"""Output kinds read from shapes, YOLO-style box decoding and matching, and the fidelity
metric chosen for each kind of model (issue 22)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeprune.fidelity import BOX_RECALL, COSINE, TOP1, compare, describe
from edgeprune.outputs import CLASSES, DENSE, DETECTION, NMS, Kind, box_agreement, decode, kind_of, match, nms


@pytest.mark.parametrize("shape, kind, layout", [
    ((1, 1000), CLASSES, ""),                 # classifier logits
    ((1, 21, 64, 64), CLASSES, ""),           # semantic segmentation class map
    ((1, 84, 8400), DETECTION, "v8"),         # YOLOv8 export
    ((1, 84, 2100), DETECTION, "v8"),         # YOLOv8n at 320x320 (the model)
    ((1, 25200, 85), DETECTION, "v5"),        # YOLOv5 export, with objectness
    ((1, 300, 6), NMS, ""),                   # NMS inside the graph: x1 y1 x2 y2 score class
    ((1, 1, 320, 320), DENSE, ""),            # text detector probability map (the model)
    ((1, 160, 160, 2), DENSE, ""),            # CRAFT: region and affinity scores, channels last
    ((1, 197, 192), DENSE, ""),               # transformer tokens
    ((1, 1), DENSE, ""),                      # one logit
])
def test_kind_from_shape(shape, kind, layout):
    got = kind_of(shape)
    assert (got.kind, got.layout) == (kind, layout)


def test_crafts_map_is_channels_last_given_the_input_size():
    assert kind_of((1, 160, 160, 2), input_hw=(320, 320)).kind == DENSE
    assert kind_of((1, 2, 160, 160), input_hw=(320, 320)).kind == CLASSES


def _v8(boxes_xywh, scores, anchors=32):
    """One sample of a v8 output [1, 4 + C, anchors]: the given boxes first, then empty anchors."""
    c = scores.shape[1]
    out = np.zeros((1, 4 + c, anchors))
    out[0, :4, :len(boxes_xywh)] = np.asarray(boxes_xywh, float).T
    out[0, 4:, :len(scores)] = scores.T
    out[0, :4, len(boxes_xywh):] = 1.0
    return out


def test_decode_keeps_confident_boxes_and_suppresses_duplicates():
    out = _v8([[10, 10, 4, 4], [10.2, 10, 4, 4], [30, 30, 6, 6], [50, 50, 4, 4]],
              np.array([[0.9, 0.0], [0.8, 0.0], [0.0, 0.7], [0.1, 0.1]]))
    boxes = decode(out, kind_of(out.shape))[0]
    assert len(boxes) == 2                                   # duplicate suppressed, low score dropped
    np.testing.assert_allclose(boxes[0], [8, 8, 12, 12, 0.9, 0])
    np.testing.assert_allclose(boxes[1], [27, 27, 33, 33, 0.7, 1])


def test_a_box_of_another_class_is_not_suppressed_nor_matched():
    a = np.array([[0, 0, 10, 10, 0.9, 0], [0, 0, 10, 10, 0.8, 1]])
    assert len(nms(a)) == 2
    assert match(a[:1], a[1:]) == 0
    assert match(a, a) == 2


def test_box_recall_counts_dense_boxes_matched_at_iou_half():
    scores = np.array([[0.9], [0.9]])
    ref = _v8([[10, 10, 4, 4], [30, 30, 4, 4]], scores)
    near = _v8([[10.5, 10, 4, 4], [30, 30.5, 4, 4]], scores)      # IoU ~0.78 each
    far = _v8([[10.5, 10, 4, 4], [33, 30, 4, 4]], scores)         # second box IoU 1/7
    kind = kind_of(ref.shape)
    assert box_agreement(ref, near, kind).recall == 1.0
    got = box_agreement(ref, far, kind)
    assert got.recall == 0.5 and got.precision == 0.5 and got.dense_boxes == 2


def test_nms_outputs_are_matched_as_they_are():
    ref = np.array([[[0, 0, 10, 10, 0.9, 3], [20, 20, 30, 30, 0.8, 1], [0, 0, 0, 0, 0.0, 0]]])
    cand = ref.copy()
    cand[0, 1, :4] += 6
    assert box_agreement(ref, cand, Kind(NMS)).recall == 0.5


def test_a_detector_is_judged_by_box_recall():
    scores = np.array([[0.9], [0.9]])
    ref = _v8([[10, 10, 4, 4], [30, 30, 4, 4]], scores)
    f = compare([ref], [_v8([[10.5, 10, 4, 4], [33, 30, 4, 4]], scores)])
    assert (f.metric, f.score, f.top1_agreement) == (BOX_RECALL, 0.5, None)
    j = f.to_json()
    assert j["metric"] == "box recall at IoU 0.5" and j["outputs"][0]["kind"] == "detection"
    assert "top1_agreement" not in j["outputs"][0] and j["outputs"][0]["box_recall"] == 0.5
    assert describe(j) == "box recall at IoU 0.5 50.0%"


def test_a_detector_whose_dense_model_finds_no_box_falls_back_to_cosine():
    ref = _v8([[10, 10, 4, 4]], np.array([[0.1]]))
    f = compare([ref], [ref * 1.01])
    assert f.metric == COSINE and f.score == pytest.approx(1.0)
    assert f.outputs[0].box_recall is None


def test_a_heat_map_is_judged_by_cosine_and_relative_error():
    rng = np.random.default_rng(0)
    ref = rng.random((4, 1, 8, 8))
    cand = ref + 0.1 * rng.standard_normal(ref.shape)
    f = compare([ref], [cand])
    assert f.metric == COSINE and f.top1_agreement is None
    out = f.outputs[0]
    assert out.kind == DENSE and out.top1_agreement is None
    assert out.relative_error == pytest.approx(np.linalg.norm(cand - ref) / np.linalg.norm(ref))
    cos = [np.dot(r.ravel(), c.ravel()) / np.linalg.norm(r) / np.linalg.norm(c) for r, c in zip(ref, cand)]
    assert out.cosine == pytest.approx(np.mean(cos)) and f.score == pytest.approx(np.mean(cos))


def test_cosine_judges_the_worst_output_and_classifiers_keep_top1():
    rng = np.random.default_rng(0)
    a, b = rng.random((4, 1, 8, 8)), rng.random((4, 8, 8, 2))
    f = compare([a, b], [a, -b])
    assert f.metric == COSINE and f.score == 0.0           # a negative cosine is no agreement
    logits = rng.standard_normal((8, 10))
    g = compare([logits, a], [logits, -a])                 # first output has a class axis
    assert (g.metric, g.score, g.top1_agreement) == (TOP1, 1.0, 1.0)
