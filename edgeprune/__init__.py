"""edgeprune: prune a trained model to fit an edge device's latency or energy budget."""

__version__ = "0.1.0"
from .api import compile  # noqa: E402,A001  the Python API mirroring `edgeprune compile`


def __getattr__(name: str):
    # `edgeprune.finetune(...)`: imported on first use, so `import edgeprune` stays light
    if name == "finetune":
        from .recover.finetune import finetune

        return finetune
    raise AttributeError(f"module 'edgeprune' has no attribute '{name}'")
