"""Importance: per-channel saliency of every group.

    compute(model, analysis, criterion, data=None, module=None) -> {group id: scores}

"l1", "l2", "bn" are data-free (magnitude.py); "taylor" needs calibration data and runs
PyTorch (taylor.py), on the user's module when given, else on the ONNX graph.
"""

from __future__ import annotations

from .magnitude import CRITERIA, scores


def compute(model, analysis, criterion: str = "l1", data=None, module=None, labels=None):
    if criterion == "taylor":
        from .taylor import taylor_scores

        return taylor_scores(model, analysis, data, module=module, labels=labels)
    return scores(model, analysis, criterion)


__all__ = ["CRITERIA", "compute", "scores"]
