"""Frontend: get a model into a safe, normalised ONNX form (the `Model` artifact)."""

from .load import Model, load_model, load_model_bytes

__all__ = ["Model", "load_model", "load_model_bytes"]
