"""edgeprune's version, apart from the package's `__init__` so that modules can read it
without importing the Python API (and through it the whole pipeline)."""

__version__ = "0.1.0"
