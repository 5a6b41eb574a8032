"""edgeprune: prune a trained model to fit an edge device's latency or energy budget."""

from .api import compile  # noqa: A001  the Python API mirroring `edgeprune compile`
from .version import __version__

__all__ = ["__version__", "compile"]


def __getattr__(name: str):
    # `edgeprune.finetune(...)`: imported on first use, so `import edgeprune` stays light
    if name == "finetune":
        from .recover.finetune import finetune

        return finetune
    raise AttributeError(f"module 'edgeprune' has no attribute '{name}'")
