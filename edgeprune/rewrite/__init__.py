"""Rewrite: physically remove channels from the ONNX graph."""

from .prune import prune
from .select import ratio_keep

__all__ = ["prune", "ratio_keep"]
