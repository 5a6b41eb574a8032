"""manifest.json: its JSON schema, and reading it back (for `verify` and the demo).

The schema pins the fields the contract lists (../shared/INTERFACE.md, "Artifact
directory"); anything else a manifest carries is free to grow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from ..errors import UsageError
from ..outdir import MANIFEST

FORMAT = "edgeprune-artifact"

_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": ["number", "null"]}
_FIDELITY = {"type": "object", "required": ["top1_agreement", "max_abs_error", "samples"],
             "properties": {"top1_agreement": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                            "top1_interval": {"type": "array", "minItems": 2, "maxItems": 2,
                                              "items": {"type": "number", "minimum": 0, "maximum": 1}},
                            "top5_agreement": {"type": "number", "minimum": 0, "maximum": 1},
                            "metric": {"type": "string"},
                            "score": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                            "outputs": {"type": "array"},
                            "max_abs_error": _NUM, "samples": {"type": "integer"}}}
_BEFORE_AFTER = {"type": "object", "required": ["before", "after"],
                 "properties": {"before": {"type": "integer"}, "after": {"type": "integer"}}}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["format", "edgeprune_version", "source", "target", "budget", "plan", "latency_ms",
                 "energy_mj", "macs", "params", "fidelity", "gates", "files"],
    "properties": {
        "format": {"const": FORMAT},
        "edgeprune_version": {"type": "string"},
        "source": {"type": "object", "required": ["path", "sha256", "kind"],
                   "properties": {"path": {"type": "string"},
                                  "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                                  "kind": {"enum": ["onnx", "factory", "module"]}}},
        "target": {"type": "object", "required": ["device", "backend", "triple"],
                   "properties": {"device": {"type": "string"}, "backend": {"enum": ["ort", "tvm"]},
                                  "triple": {"type": ["string", "null"]}, "tvm": {"type": "object"}}},
        "budget": {"type": "object", "required": ["text", "latency_ms", "latency_x", "energy_mj"]},
        "plan": {"type": "object", "required": ["criterion", "groups"],
                 "properties": {"groups": {"type": "object", "additionalProperties": {
                     "type": "object", "required": ["kept", "total"],
                     "properties": {"kept": {"type": "integer"}, "total": {"type": "integer"}}}}}},
        "latency_ms": {"type": "object",
                       "required": ["dense_predicted", "predicted", "measured_median", "measured_p90"],
                       "properties": {"dense_predicted": _NUM, "predicted": _NUM,
                                      "measured_median": _NUM_OR_NULL, "measured_p90": _NUM_OR_NULL}},
        "energy_mj": {"type": "object", "required": ["predicted", "predicted_source", "measured", "measured_source"],
                      "properties": {"predicted": _NUM_OR_NULL, "measured": _NUM_OR_NULL,
                                     "measured_source": {"type": ["string", "null"]}}},
        "macs": _BEFORE_AFTER,
        "params": _BEFORE_AFTER,
        "fidelity": {"oneOf": [{"type": "null"}, {
            "type": "object", "required": ["data", "stages"],
            "properties": {"stages": {"type": "object", "additionalProperties": _FIDELITY}}}]},
        "gates": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["flag", "limit", "value", "passed"],
            "properties": {"limit": _NUM, "value": _NUM_OR_NULL, "passed": {"type": "boolean"}}}},
        "files": {"type": "object", "additionalProperties": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
    },
}


def errors(manifest: dict[str, Any]) -> str | None:
    err = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(SCHEMA).iter_errors(manifest))
    if err is None:
        return None
    where = "/".join(str(p) for p in err.absolute_path) or "top level"
    return f"at {where}: {err.message}"


def validate(manifest: dict[str, Any]) -> None:
    """For a manifest we are about to write: breaking the schema is a bug (exit 1)."""
    problem = errors(manifest)
    if problem:
        raise ValueError(f"manifest does not match its schema {problem}")


def load_manifest(outdir: str | Path) -> dict[str, Any]:
    """Read OUTDIR/manifest.json; a missing or invalid one is bad input (exit 2)."""
    path = Path(outdir) / MANIFEST
    if not Path(outdir).is_dir():
        raise UsageError(f"{outdir}: no such artifact directory")
    if not path.is_file():
        raise UsageError(f"{outdir}: no {MANIFEST}; not a complete edgeprune artifact")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"{path}: not readable JSON ({type(e).__name__})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UsageError(f"{path}: not an edgeprune artifact manifest")
    problem = errors(manifest)
    if problem:
        raise UsageError(f"{path}: invalid manifest {problem}")
    return manifest
