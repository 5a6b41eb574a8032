"""`edgeprune verify OUTDIR [--data DATA] [gates]`: re-run a compiled artifact and re-check
its gates.

Checks, in order: the manifest is valid and every file it lists has its sha256 (a tampered or
half-copied artifact is bad input, exit 2); the deployed artifact runs on this host and gives
the outputs of the model it was built from; it is timed again on the target device; with
DATA (or the DATA recorded at compile time, when it is still there unchanged) the fidelity
against the dense source model is measured again. The gates are the ones recorded in the
manifest, each overridden by the same flag on the command line or in edgeprune.toml.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..config import config_option
from ..errors import UsageError
from ..gates import GATES, check_limits, evaluate, raise_if_failed
from .common import data_options, device_option, gate_options


@click.command("verify")
@click.argument("outdir", required=False)
@data_options
@device_option("target", default=None, help="Time on this DEVICE instead of the one compiled for.")
@click.option("--no-measure", is_flag=True, help="Skip timing on the device (outputs and hashes only).")
@gate_options
@config_option("verify", frozenset({"outdir", "data"}))
def command(outdir, data, image_size, mean, std, target, no_measure, max_latency, max_energy,
            min_fidelity, max_size):
    """Re-run a compiled artifact against its reference and re-check its gates."""
    from ..report.manifest import load_manifest
    from ..verify import reverify

    if outdir is None:
        raise UsageError("OUTDIR is required")
    root = Path(outdir)
    manifest = load_manifest(root)
    limits = {name: g["limit"] for name, g in (manifest.get("gates") or {}).items()
              if name in GATES and name != "int8_kernels"}   # kernels are checked at compile
    limits.update(check_limits({"max_latency": max_latency, "max_energy": max_energy,
                                "min_fidelity": min_fidelity, "max_size": max_size}))
    report = reverify(root, manifest, data=data, image_size=image_size, mean=mean, std=std,
                      target=target, measure=not no_measure, need_fidelity="min_fidelity" in limits)
    results = evaluate(limits, report.measured)
    for line in report.lines:
        click.echo(line)
    for r in results:
        click.echo(("  ✓ " if r.passed else "  ✗ ") + r.describe())
    if not results:
        click.echo("  no gates to check")
    raise_if_failed(results, str(root))
    click.echo(f"{root}: verified")
