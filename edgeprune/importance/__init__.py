"""Importance: per-channel saliency of every group."""

from .magnitude import CRITERIA, scores

__all__ = ["CRITERIA", "scores"]
