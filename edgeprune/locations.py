"""Where edgeprune's files live: the one module that knows.

- **Packaged data** (read-only, shipped inside the package, read through
  `importlib.resources`): `edgeprune.profiles` (device profiles `*.toml`, measured LUTs
  `luts/*.json`) and `edgeprune.runtimes` (`runner.py` and its backends, the emulation
  scripts). In the repository these are the top-level `profiles/` and `runtimes/` folders,
  mapped into the package by `pyproject.toml` (`package-dir`); an editable install and a
  wheel see the same names.
- **User config** (`$EDGEPRUNE_CONFIG_DIR`, else `$XDG_CONFIG_HOME/edgeprune`, else
  `~/.config/edgeprune`): `profiles/*.toml`, the user's own device profiles. A user profile
  of the same name as a packaged one wins.
- **User cache** (`$EDGEPRUNE_CACHE_DIR`, else the older `$EDGEPRUNE_CACHE`, else
  `$XDG_CACHE_HOME/edgeprune`, else `~/.cache/edgeprune`): `luts/` (measured LUTs),
  `tvm-tuning/` (MetaSchedule databases), `rpc-libs/`, `bundles/` (device bundles), `emulation/`.

Nothing is ever written into the package folder (site-packages once installed): a LUT that
ships with the package is copied into the cache the first time it is looked up there, and
extended in the cache (copy on write).
"""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path

PACKAGE = "edgeprune"
_SOURCE_ROOT = Path(__file__).resolve().parent.parent   # a source checkout without an install


def packaged(name: str) -> Path:
    """The folder of packaged data `name` ("profiles" or "runtimes"), read-only.

    Installed (wheel or editable) it is the package `edgeprune.<name>`; from a bare source
    checkout on sys.path (no install) it is the repository's top-level folder."""
    try:
        root = resources.files(f"{PACKAGE}.{name}")
    except ModuleNotFoundError:
        root = None
    if root is not None and isinstance(root, Path) and root.is_dir():
        return root
    if root is not None:
        # a non-file resource reader (zip import): not supported, runners need real files
        try:
            path = Path(str(root))
            if path.is_dir():
                return path
        except (TypeError, ValueError):
            pass
    fallback = _SOURCE_ROOT / name
    if fallback.is_dir():
        return fallback
    raise RuntimeError(f"edgeprune: packaged data '{name}' not found (broken install?)")


def profiles_dir() -> Path:
    """Packaged device profiles (read-only)."""
    return packaged("profiles")


def runtimes_dir() -> Path:
    """Packaged device runtimes: runner.py, backend_*.py, emulation/ (read-only)."""
    return packaged("runtimes")


def packaged_luts_dir() -> Path:
    """Measured LUTs that ship with the package (read-only)."""
    return profiles_dir() / "luts"


def _home() -> Path:
    return Path(os.environ.get("HOME") or Path.home())


def config_dir() -> Path:
    """The user's edgeprune config folder (not created here)."""
    if os.environ.get("EDGEPRUNE_CONFIG_DIR"):
        return Path(os.environ["EDGEPRUNE_CONFIG_DIR"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(_home() / ".config")
    return Path(base).expanduser() / "edgeprune"


def cache_dir() -> Path:
    """The user's edgeprune cache folder (not created here)."""
    for var in ("EDGEPRUNE_CACHE_DIR", "EDGEPRUNE_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(_home() / ".cache")
    return Path(base).expanduser() / "edgeprune"


def user_profiles_dir() -> Path:
    return config_dir() / "profiles"


def profile_dirs() -> list[Path]:
    """Where profile names are looked up, first match wins: user profiles, then packaged."""
    return [user_profiles_dir(), profiles_dir()]


def luts_dir() -> Path:
    """Where LUTs are written (and read first)."""
    return cache_dir() / "luts"


def lut_file(name: str) -> Path:
    """The writable LUT file `name` in the cache. If it is not there yet but the package
    ships a LUT of that name, the shipped one is copied in first (copy on write: the package
    stays untouched, the copy is extended). If the cache cannot be written, the shipped file
    itself is returned (read-only)."""
    target = luts_dir() / name
    if target.exists():
        return target
    shipped = packaged_luts_dir() / name
    if shipped.is_file():
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{name}.tmp{os.getpid()}")
            shutil.copyfile(shipped, tmp)
            os.replace(tmp, target)
        except OSError:
            return shipped
    return target


def tvm_tuning_dir() -> Path:
    return cache_dir() / "tvm-tuning"


def rpc_libs_dir() -> Path:
    return cache_dir() / "rpc-libs"


def describe() -> dict[str, str]:
    """For `edgeprune devices` and debugging: every location and what it holds."""
    return {"packaged_profiles": str(profiles_dir()), "runtimes": str(runtimes_dir()),
            "user_profiles": str(user_profiles_dir()), "luts": str(luts_dir()),
            "tvm_tuning": str(tvm_tuning_dir())}
