"""Importance: per-channel saliency of every group.

    compute(model, analysis, criterion, data=None, module=None) -> {group id: scores}

"l1", "l2", "bn" are data-free (magnitude.py); "taylor" needs calibration data and runs
PyTorch (taylor.py), on the user's module when given, else on the ONNX graph; "refit" (needs
data, runs the ONNX graph in PyTorch) scores the loss left after recovery refits the
channels' consumers (refit.py).
"""

from __future__ import annotations

from .magnitude import CRITERIA, NEEDS_DATA, scores


def compute(model, analysis, criterion: str = "l1", data=None, module=None, labels=None):
    if criterion == "taylor":
        from .taylor import taylor_scores

        return taylor_scores(model, analysis, data, module=module, labels=labels)
    if criterion == "refit":
        from .refit import refit_scores

        return refit_scores(model, analysis, data)
    return scores(model, analysis, criterion)


__all__ = ["CRITERIA", "NEEDS_DATA", "compute", "scores"]
