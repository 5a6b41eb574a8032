"""The artifact directory, written atomically.

Everything is built in a sibling staging folder (`.NAME.edgeprune-PID-RANDOM`, same
filesystem, so a rename is atomic), every file is fsynced, `manifest.json` is written last,
and only then does the folder take OUTDIR's name. A run that fails, or is killed at any
instant (even SIGKILL), leaves at most a hidden staging folder — never an OUTDIR that looks
complete — and an existing OUTDIR is replaced only when the new one is complete: on Linux by
an atomic exchange (renameat2 RENAME_EXCHANGE), elsewhere by two renames. Staging folders
left by killed runs are removed by the next run.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import hashlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

from .errors import UsageError

MANIFEST = "manifest.json"
_TAG = ".edgeprune-"
_RENAME_EXCHANGE = 2


def check_outdir(path: str | os.PathLike, flag: str = "-o") -> Path:
    """Refuse, before any work, an OUTDIR we could not or should not replace."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{flag} {path}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise UsageError(f"{flag} {path}: exists, is not empty and is not an edgeprune artifact "
                         f"(no {MANIFEST}); remove it or choose another folder")
    parent = out.resolve().parent
    if parent.exists() and not parent.is_dir():
        raise UsageError(f"{flag} {path}: parent is not a directory")
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_hashes(root: Path, exclude: tuple[str, ...] = (MANIFEST,)) -> dict[str, str]:
    """Relative POSIX path → sha256 of every file under root, sorted."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and rel not in exclude:
            out[rel] = sha256_file(p)
    return out


class ArtifactDir:
    """`with ArtifactDir(OUTDIR) as d:` write into `d.path`, then `d.commit(manifest)`.
    Leaving the block without commit (an error, a gate check raising before commit) removes
    the staging folder; OUTDIR is untouched."""

    def __init__(self, final: str | os.PathLike):
        self.final = Path(final).absolute()
        self.path: Path | None = None
        self.committed = False

    def __enter__(self) -> "ArtifactDir":
        parent = self.final.parent
        parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(parent, self.final.name)
        self.path = parent / f".{self.final.name}{_TAG}{os.getpid()}-{secrets.token_hex(4)}"
        self.path.mkdir()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.path is not None and self.path.exists():
            shutil.rmtree(self.path, ignore_errors=True)

    def commit(self, manifest: dict[str, Any]) -> Path:
        """Hash and fsync every file, write the manifest (with `files`) last, and put the
        folder in place. Returns OUTDIR."""
        assert self.path is not None and not self.committed
        manifest = dict(manifest)
        manifest["files"] = file_hashes(self.path)
        for rel in manifest["files"]:
            _fsync_file(self.path / rel)
        tmp = self.path / f".{MANIFEST}.tmp"
        with open(tmp, "w") as f:
            f.write(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path / MANIFEST)
        for d in sorted({p.parent for p in self.path.rglob("*")} | {self.path}, key=lambda p: -len(p.parts)):
            _fsync_dir(d)
        self._swap()
        _fsync_dir(self.final.parent)
        self.committed = True
        return self.final

    def _swap(self) -> None:
        if not self.final.exists():
            os.rename(self.path, self.final)
            self.path = None
            return
        if _exchange(self.path, self.final):
            # the staging name now holds the old OUTDIR; __exit__ removes it
            return
        old = self.final.parent / f".{self.final.name}{_TAG}{os.getpid()}-old-{secrets.token_hex(4)}"
        os.rename(self.final, old)
        os.rename(self.path, self.final)
        self.path = old


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False where unsupported."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return False
    at_fdcwd = -100
    rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _remove_stale(parent: Path, name: str) -> None:
    """Staging folders whose process is gone (a killed run) are garbage."""
    for p in parent.glob(f".{name}{_TAG}*"):
        pid = p.name[len(f".{name}{_TAG}"):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories
    finally:
        os.close(fd)
