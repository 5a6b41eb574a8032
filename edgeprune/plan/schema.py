"""The Plan artifact: which channels of each group to keep, with what it was planned for.

A plan belongs to one model (its source sha256) and is refused for any other. Written as
canonical JSON (sorted keys, rounded floats, no timestamps), so the same inputs give the
same bytes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema

from ..errors import UsageError
from ..frontend.load import Model
from ..graph.groups import Analysis

FORMAT = "edgeprune-plan"
VERSION = 1
_DECIMALS = 6  # predicted figures are rounded so floating-point noise never changes the bytes

_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": ["number", "null"]}
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["format", "version", "model_sha256", "device", "criterion", "budget",
                 "cost_model", "predicted", "solver", "importance", "groups"],
    "properties": {
        "format": {"const": FORMAT},
        "version": {"type": "integer"},
        "model_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "device": {"type": "string"},
        "criterion": {"type": "string"},
        "budget": {
            "type": "object", "required": ["text", "latency_ms", "latency_x", "energy_mj"],
            "properties": {"text": {"type": "string"}, "latency_ms": _NUM_OR_NULL,
                           "latency_x": _NUM_OR_NULL, "energy_mj": _NUM_OR_NULL},
        },
        "cost_model": {"type": "object", "required": ["kind"],
                       "properties": {"kind": {"type": "string"}}},
        "predicted": {
            "type": "object",
            "required": ["dense_latency_ms", "latency_ms", "dense_energy_mj", "energy_mj",
                         "energy_estimated"],
            "properties": {"dense_latency_ms": _NUM, "latency_ms": _NUM,
                           "dense_energy_mj": _NUM_OR_NULL, "energy_mj": _NUM_OR_NULL,
                           "energy_estimated": {"type": "boolean"}},
        },
        "solver": {"type": "object", "required": ["method", "iterations"]},
        "importance": {"type": "object", "required": ["kept", "total"],
                       "properties": {"kept": _NUM, "total": _NUM}},
        "measured": {"type": "object", "required": ["dense_ms", "latency_ms"],
                     "properties": {"dense_ms": _NUM, "latency_ms": _NUM}},
        "groups": {
            "type": "array",
            "items": {
                "type": "object", "required": ["id", "name", "total", "kept", "indices"],
                "properties": {
                    "id": {"type": "string"}, "name": {"type": "string"},
                    "total": {"type": "integer", "minimum": 1},
                    "kept": {"type": "integer", "minimum": 1},
                    "indices": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                },
            },
        },
    },
}


@dataclass
class GroupPlan:
    id: str
    name: str
    total: int
    indices: list[int]   # kept channel indices, ascending

    @property
    def kept(self) -> int:
        return len(self.indices)

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "total": self.total, "kept": self.kept,
                "indices": list(self.indices)}


@dataclass
class Plan:
    model_sha256: str
    device: str
    criterion: str
    budget: dict                     # Budget.to_json()
    cost_model: dict                 # what predicted the costs: kind, source, sha256, ...
    predicted: dict                  # dense/planned latency (ms) and energy (mJ)
    solver: dict                     # method, iterations, discretisation error, ...
    importance: dict                 # total importance kept / of the dense model
    groups: list[GroupPlan] = field(default_factory=list)
    measured: dict | None = None     # device timings when planned with --measure

    @property
    def keep(self) -> dict[str, list[int]]:
        """{group id: kept indices} for the groups that lose channels (what `prune` takes)."""
        return {g.id: list(g.indices) for g in self.groups if g.kept < g.total}

    def to_json(self) -> dict:
        return _rounded({
            "format": FORMAT, "version": VERSION, "model_sha256": self.model_sha256,
            "device": self.device, "criterion": self.criterion, "budget": self.budget,
            "cost_model": self.cost_model, "predicted": self.predicted, "solver": self.solver,
            "importance": self.importance, "groups": [g.to_json() for g in self.groups],
            **({"measured": self.measured} if self.measured is not None else {}),
        })

    @staticmethod
    def from_json(d: dict) -> "Plan":
        return Plan(model_sha256=d["model_sha256"], device=d["device"], criterion=d["criterion"],
                    budget=d["budget"], cost_model=d["cost_model"], predicted=d["predicted"],
                    solver=d["solver"], importance=d["importance"],
                    groups=[GroupPlan(g["id"], g["name"], g["total"], list(g["indices"]))
                            for g in d["groups"]], measured=d.get("measured"))


def _rounded(obj):
    if isinstance(obj, float):
        return round(obj, _DECIMALS) + 0.0   # + 0.0 turns -0.0 into 0.0
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rounded(v) for v in obj]
    return obj


def dumps_plan(plan: Plan) -> str:
    return json.dumps(plan.to_json(), sort_keys=True, indent=1, allow_nan=False) + "\n"


def save_plan(plan: Plan, path: str | os.PathLike) -> Path:
    """Write atomically (temp file in the same folder, then rename)."""
    from ..atomic import write_text

    return write_text(path, dumps_plan(plan))


def parse_plan(text: str, name: str = "<plan>") -> Plan:
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"{name}: not a plan (invalid JSON at line {e.lineno}: {e.msg})") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise UsageError(f"{name}: not an edgeprune plan (no \"format\": \"{FORMAT}\")")
    if d.get("version") != VERSION:
        raise UsageError(f"{name}: plan version {d.get('version')!r} is not supported "
                         f"(this edgeprune reads version {VERSION})")
    err = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(SCHEMA).iter_errors(d))
    if err is not None:
        where = "/".join(str(p) for p in err.absolute_path) or "top level"
        raise UsageError(f"{name}: invalid plan at {where}: {err.message}")
    for g in d["groups"]:
        if g["kept"] != len(g["indices"]) or len(set(g["indices"])) != len(g["indices"]):
            raise UsageError(f"{name}: group {g['id']}: 'kept' is {g['kept']} but "
                             f"{len(set(g['indices']))} distinct indices are listed")
    return Plan.from_json(d)


def load_plan(path: str | os.PathLike, model: Model, analysis: Analysis) -> Plan:
    """Read a plan and check it belongs to `model`: same source hash, and every group it
    names exists with the same channel count (UsageError otherwise)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--plan {path}: no such file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--plan {path}: cannot read ({type(e).__name__})") from None
    plan = parse_plan(text, str(path))
    if plan.model_sha256 != model.sha256:
        raise UsageError(f"{path}: the plan is for another model (sha256 {plan.model_sha256[:12]}…, "
                         f"this model is {model.sha256[:12]}…)")
    for g in plan.groups:
        group = analysis.group(g.id)
        if group.channels != g.total:
            raise UsageError(f"{path}: group {g.id} has {group.channels} channels in this model, "
                             f"the plan says {g.total}")
    analysis.keep_mask(plan.keep)   # range, frozen and empty-group checks, as one-line errors
    return plan
