"""Atomic file writes: the new content goes to a temporary file beside the destination and
replaces it in one rename, so a reader (or a process killed midway) sees the old file or the
new one, never half of one. Every writer of a user-visible file goes through here."""

from __future__ import annotations

import itertools
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_serial = itertools.count()


@contextmanager
def replacing(path: str | os.PathLike, suffix: str | None = None, fsync: bool = False) -> Iterator[Path]:
    """A temporary path in `path`'s folder to write to; it replaces `path` when the block
    ends without an exception and is removed otherwise. The temporary name keeps `path`'s
    suffix (or `suffix`), for writers that choose a format by it (np.savez, export_library).
    `fsync`: the data is on disk before the rename (files others rely on after a crash)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}-{next(_serial)}{path.suffix if suffix is None else suffix}")
    try:
        yield tmp
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike, data: bytes, fsync: bool = False) -> Path:
    with replacing(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str, fsync: bool = False) -> Path:
    with replacing(path, fsync=fsync) as tmp:
        tmp.write_text(text)
    return Path(path)
