"""The LUT file: a versioned JSON document, validated on load, merged on save.

    {"format": "edgeprune-lut", "version": 1,
     "header": {"device", "backend", "cpu", "threads", "channel_step", ...},
     "signatures": {key: Signature as JSON},                      # workloads, stored apart
     "entries": [{"sig", "c_in", "c_out", "median_ms", "p90_ms", "count",
                  "energy_mj", "energy_source", "runs": [...]}],   # measurements
     "models": {structure_key: {"name", "rest_ms", "dense_ms", ...}}}  # whole-model "rest" terms

A run marked `"transferred": true` holds a value scaled from another device's LUT
(transfer.py), not a timing: any measured run of the entry outranks it.
Several runs of the same entry merge: each keeps its own record in `runs`. The entry's
median and p90 are those of its fastest run (the lowest median), its count the sum: other
load on the machine (a busy SMT sibling, a thrashed cache) only ever makes a run slower, so
the fastest run is the best estimate of the device's own speed.
Writers hold a file lock, re-read what is on disk, merge, and replace the file atomically, so
concurrent `profile` runs and a run killed at any instant never lose a saved entry.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
from filelock import FileLock

from ..errors import UsageError
from .layers import Signature

FORMAT = "edgeprune-lut"
VERSION = 1

_RUN = {
    "type": "object",
    "required": ["median_ms", "p90_ms", "count"],
    "properties": {
        "median_ms": {"type": "number", "exclusiveMinimum": 0},
        "p90_ms": {"type": "number", "exclusiveMinimum": 0},
        "count": {"type": "integer", "minimum": 1},
        "energy_mj": {"type": ["number", "null"], "minimum": 0},
        "energy_source": {"type": ["string", "null"]},
        "at": {"type": "string"},
        "run": {"type": "string"},
        "state": {"type": "object"},
        # a value scaled from another device's LUT (transfer.py), not a timing on this one
        "transferred": {"type": "boolean"},
    },
}
SCHEMA = {
    "type": "object",
    "required": ["format", "version", "header", "signatures", "entries"],
    "properties": {
        "format": {"const": FORMAT},
        "version": {"type": "integer"},
        "header": {
            "type": "object",
            "required": ["device", "backend", "channel_step", "threads"],
            "properties": {
                "device": {"type": "string"}, "backend": {"type": "string"},
                "cpu": {"type": "string"}, "fingerprint": {"type": "string"},
                "channel_step": {"type": "integer", "minimum": 1},
                "threads": {"type": "integer", "minimum": 0},
                "estimated": {"type": "boolean"},
            },
        },
        "signatures": {"type": "object", "additionalProperties": {"type": "object", "required": ["kind"]}},
        "entries": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["sig", "c_in", "c_out", "runs"],
                "properties": {
                    "sig": {"type": "string"},
                    "c_in": {"type": "integer", "minimum": 1},
                    "c_out": {"type": "integer", "minimum": 1},
                    "runs": {"type": "array", "minItems": 1, "items": _RUN},
                },
            },
        },
        "grids": {
            "type": "object",
            "additionalProperties": {
                "type": "object", "required": ["points"],
                "properties": {"points": {"type": "array", "items": {
                    "type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "integer", "minimum": 1}}}},
            },
        },
        "models": {
            "type": "object",
            "additionalProperties": {
                "type": "object", "required": ["rest_ms"],
                "properties": {"rest_ms": {"type": "number"}, "dense_ms": {"type": "number", "minimum": 0}},
            },
        },
    },
}


@dataclass
class Entry:
    sig: str
    c_in: int
    c_out: int
    runs: list[dict]

    @property
    def best(self) -> dict:
        # a timing on this device outranks any value transferred from another one
        measured = [r for r in self.runs if not r.get("transferred")]
        return min(measured or self.runs, key=lambda r: r["median_ms"])

    @property
    def transferred(self) -> bool:
        """Whether the entry holds only values transferred from another device (transfer.py)."""
        return all(r.get("transferred") for r in self.runs)

    @property
    def median_ms(self) -> float:
        return self.best["median_ms"]

    @property
    def p90_ms(self) -> float:
        return self.best["p90_ms"]

    @property
    def count(self) -> int:
        return sum(r["count"] for r in self.runs)

    @property
    def energy_mj(self) -> float | None:
        vals = [r["energy_mj"] for r in self.runs if r.get("energy_mj") is not None]
        return statistics.median(vals) if vals else None

    @property
    def energy_source(self) -> str | None:
        return next((r["energy_source"] for r in self.runs if r.get("energy_mj") is not None), None)

    def to_json(self) -> dict:
        return {"sig": self.sig, "c_in": self.c_in, "c_out": self.c_out,
                "median_ms": self.median_ms, "p90_ms": self.p90_ms, "count": self.count,
                "energy_mj": self.energy_mj, "energy_source": self.energy_source, "runs": self.runs}


@dataclass
class Lut:
    header: dict
    signatures: dict[str, dict] = field(default_factory=dict)
    entries: dict[tuple[str, int, int], Entry] = field(default_factory=dict)
    models: dict[str, dict] = field(default_factory=dict)
    # a signature's grid once refinement finished: {grid key: {"points": [[c_in, c_out], ...]}}
    grids: dict[str, dict] = field(default_factory=dict)
    path: Path | None = None

    # ------------------------------------------------------------- queries
    def get(self, sig: str, c_in: int, c_out: int) -> Entry | None:
        return self.entries.get((sig, c_in, c_out))

    def signature(self, key: str) -> Signature:
        return Signature.from_json(self.signatures[key])

    def points(self, sig: str) -> list[Entry]:
        return [e for (s, _, _), e in self.entries.items() if s == sig]

    @property
    def channel_step(self) -> int:
        return int(self.header["channel_step"])

    # ------------------------------------------------------------- edits
    def add(self, signature: Signature, c_in: int, c_out: int, run: dict) -> Entry:
        _check_run(run, f"entry {signature.key} {c_in}x{c_out}")
        self.signatures.setdefault(signature.key, signature.to_json())
        key = (signature.key, c_in, c_out)
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries[key] = Entry(signature.key, c_in, c_out, [])
        if run not in entry.runs:
            entry.runs.append(run)
        return entry

    def merge(self, other: "Lut", other_name: str = "LUT") -> None:
        _check_compatible(self.header, other.header, other_name)
        for k, v in other.signatures.items():
            self.signatures.setdefault(k, v)
        for key, e in other.entries.items():
            mine = self.entries.get(key)
            if mine is None:
                self.entries[key] = Entry(e.sig, e.c_in, e.c_out, list(e.runs))
            else:
                mine.runs.extend(r for r in e.runs if r not in mine.runs)
        for k, v in other.models.items():
            self.models.setdefault(k, v)
        for k, v in other.grids.items():
            self.grids.setdefault(k, v)

    def to_json(self) -> dict:
        entries = sorted(self.entries.values(), key=lambda e: (e.sig, e.c_in, e.c_out))
        return {"format": FORMAT, "version": VERSION, "header": self.header,
                "signatures": dict(sorted(self.signatures.items())),
                "entries": [e.to_json() for e in entries], "models": self.models,
                "grids": dict(sorted(self.grids.items()))}





def _check_compatible(a: dict, b: dict, name: str) -> None:
    for k in ("device", "backend", "fingerprint", "threads", "clock"):
        if a.get(k) != b.get(k):
            raise UsageError(f"{name}: cannot merge a LUT for {k}={b.get(k)!r} into one for {k}={a.get(k)!r}")


def _check_run(run: dict, where: str) -> None:
    for k in ("median_ms", "p90_ms", "energy_mj"):
        v = run.get(k)
        if v is not None and (not isinstance(v, (int, float)) or math.isnan(v) or math.isinf(v) or v < 0):
            raise UsageError(f"{where}: {k} is {v!r}, not a finite non-negative number")


# ----------------------------------------------------------------- files
def load_lut(path: str | os.PathLike) -> Lut:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such LUT file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: cannot read LUT ({type(e).__name__})") from None
    return parse_lut(text, str(path), path)


def parse_lut(text: str, name: str, path: Path | None = None) -> Lut:
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except _NonFinite as e:
        raise UsageError(f"{name}: LUT holds a non-finite number ({e})") from None
    except json.JSONDecodeError as e:
        # a whole LUT document ends with its closing brace; a cut-off one does not
        what = "truncated" if text.strip() and not text.rstrip().endswith("}") else "corrupt"
        raise UsageError(f"{name}: {what} LUT (JSON error at line {e.lineno} column {e.colno}: {e.msg})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise UsageError(f"{name}: not an edgeprune LUT (missing \"format\": \"{FORMAT}\")")
    if doc.get("version") != VERSION:
        raise UsageError(f"{name}: LUT version {doc.get('version')!r} is not supported (this edgeprune reads version {VERSION})")
    # the schema checked entry by entry costs a second per thousands of entries; entries that
    # plainly hold (checked by hand, the same rules) leave the schema only the rest to check
    shown = {**doc, "entries": []} if _entries_plainly_valid(doc.get("entries")) else doc
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(SCHEMA).iter_errors(shown))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "top level"
        raise UsageError(f"{name}: invalid LUT at {where}: {error.message}")
    lut = Lut(header=doc["header"], signatures=doc["signatures"], models=doc.get("models", {}),
              grids=doc.get("grids", {}), path=path)
    for i, e in enumerate(doc["entries"]):
        if e["sig"] not in lut.signatures:
            raise UsageError(f"{name}: invalid LUT at entries/{i}: unknown signature {e['sig']!r}")
        for r in e["runs"]:
            _check_run(r, f"{name}: entries/{i}")
        key = (e["sig"], e["c_in"], e["c_out"])
        if key in lut.entries:
            lut.entries[key].runs.extend(r for r in e["runs"] if r not in lut.entries[key].runs)
        else:
            lut.entries[key] = Entry(e["sig"], e["c_in"], e["c_out"], list(e["runs"]))
    for k, m in lut.models.items():
        if any(isinstance(v, float) and not math.isfinite(v) for v in m.values()):
            raise UsageError(f"{name}: invalid LUT at models/{k}: non-finite number")
    return lut


def _entries_plainly_valid(entries) -> bool:
    """Whether `entries` meets SCHEMA's entry rules (False: let jsonschema say what is wrong)."""
    if not isinstance(entries, list):
        return False
    for e in entries:
        if not (isinstance(e, dict) and isinstance(e.get("sig"), str) and _count(e.get("c_in"))
                and _count(e.get("c_out")) and isinstance(e.get("runs"), list) and e["runs"]):
            return False
        for r in e["runs"]:
            if not (isinstance(r, dict) and _positive(r.get("median_ms")) and _positive(r.get("p90_ms"))
                    and _count(r.get("count")) and _optional(r, "energy_mj", (int, float))
                    and (r.get("energy_mj") is None or r["energy_mj"] >= 0)
                    and _optional(r, "energy_source", str) and _optional(r, "at", str, nullable=False)
                    and _optional(r, "run", str, nullable=False) and _optional(r, "state", dict, nullable=False)
                    and isinstance(r.get("transferred", False), bool)):
                return False
    return True


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _positive(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0


def _optional(r: dict, key: str, kind, nullable: bool = True) -> bool:
    if key not in r:
        return True
    v = r[key]
    return (v is None and nullable) or (isinstance(v, kind) and not isinstance(v, bool))


class _NonFinite(ValueError):
    pass


def _reject_constant(name: str):
    raise _NonFinite(name)


def write_lut(lut: Lut, path: str | os.PathLike) -> None:
    """Atomic write of the whole document (temp file in the same folder + os.replace)."""
    from ..atomic import replacing

    with replacing(path, fsync=True) as tmp, open(tmp, "w") as f:
        # compact: a LUT is rewritten after every entry, and may hold thousands
        json.dump(lut.to_json(), f, separators=(",", ":"), allow_nan=False)


def lock_path(path: Path) -> Path:
    """Where writers of `path` take their lock: outside the user's folder (a compile that is
    refused or killed leaves nothing beside their files), one file per resolved LUT path."""
    folder = Path(tempfile.gettempdir()) / f"edgeprune-locks-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    digest = hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:32]
    return folder / f"{digest}.lock"


class LutWriter:
    """Saves a LUT after every change, merging with whatever other writers put on disk.

    Inside `deferred(seconds)` changes are saved at most that often (and when it ends, however
    it ends): rewriting a LUT of thousands of entries takes longer than measuring one, and a
    kill then loses at most that many seconds of measurements."""

    def __init__(self, path: str | os.PathLike, header: dict):
        self.path = Path(path)
        self.lock = FileLock(str(lock_path(self.path)), timeout=60)
        self._pending: list = []
        self._defer: float | None = None
        self._saved_at = 0.0
        with self.lock:
            if self.path.exists():
                self.lut = load_lut(self.path)
                _check_compatible(self.lut.header, header, str(self.path))
            else:
                self.lut = Lut(header=dict(header), path=self.path)
                write_lut(self.lut, self.path)
            self._written = self._stat()

    def _stat(self):
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _sync(self, change) -> None:
        self._pending.append(change)
        if self._defer is None or time.monotonic() - self._saved_at >= self._defer:
            self.flush()

    def flush(self) -> None:
        """Save every change made since the last save."""
        if not self._pending:
            return
        with self.lock:
            stat = self._stat()
            if stat is not None and stat != getattr(self, "_written", None):
                # another writer saved since we last did: merge with what is on disk
                disk = load_lut(self.path)
                for change in self._pending:
                    change(disk)
                disk.merge(self.lut, str(self.path))
                self.lut = disk
            else:
                for change in self._pending:
                    change(self.lut)
            write_lut(self.lut, self.path)
            self._written = self._stat()
            self._pending = []
            self._saved_at = time.monotonic()

    @contextmanager
    def deferred(self, seconds: float):
        outer, self._defer = self._defer, seconds if self._defer is None else min(self._defer, seconds)
        try:
            yield self
        finally:
            self._defer = outer
            self.flush()

    def add(self, signature: Signature, c_in: int, c_out: int, run: dict) -> None:
        self.lut.add(signature, c_in, c_out, run)  # validates before anything is written
        self._sync(lambda lut: lut.add(signature, c_in, c_out, run))

    def set_grid(self, key: str, points: list[tuple[int, int]]) -> None:
        record = {"points": [list(p) for p in sorted(set(points))]}
        self.lut.grids[key] = record
        self._sync(lambda lut: lut.grids.__setitem__(key, record))

    def set_model(self, key: str, record: dict) -> None:
        self.lut.models[key] = record
        self._sync(lambda lut: lut.models.__setitem__(key, record))

    def set_header(self, key: str, value) -> None:
        self.lut.header[key] = value
        self._sync(lambda lut: lut.header.__setitem__(key, value))
