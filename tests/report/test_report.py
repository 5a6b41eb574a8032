"""report.md and plots/ from a real compile's manifest, and the sweep's fidelity plot."""

from __future__ import annotations

import copy
import json

import pytest

from edgeprune.cli import main
from edgeprune.report.manifest import errors, load_manifest
from edgeprune.report.markdown import headline, render
from edgeprune.report.plots import write_plots
from edgeprune.errors import UsageError
from tests.pipeline.fixtures import compiled, setup  # noqa: F401

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def manifest(compiled):
    return load_manifest(compiled)


def test_report_has_a_row_per_group_with_kept_over_total(manifest):
    text = render(manifest)
    for gid, g in manifest["plan"]["groups"].items():
        assert f"| {gid} | `{g['name']}` | {g['kept']} / {g['total']} |" in text


def test_report_shows_each_gate_with_value_and_verdict(manifest):
    m = copy.deepcopy(manifest)
    m["gates"] = {"max_latency": {"flag": "--max-latency", "limit": 0.5, "value": 0.61, "unit": "ms",
                                  "source": "measured median on host", "passed": False}}
    text = render(m)
    assert "| --max-latency | 0.5 | 0.61 | measured median on host | ❌ failed |" in text
    assert "--max-latency FAILED" in "\n".join(headline(m))


def test_report_fidelity_table_lists_each_stage(manifest):
    text = render(manifest)
    for stage, f in manifest["fidelity"]["stages"].items():
        assert f"| {stage} | {f['top1_agreement']:.1%} |" in text


def test_plots_are_pngs_and_fidelity_needs_several_budgets(manifest, tmp_path):
    made = write_plots(manifest, tmp_path / "plots")
    assert set(made) == {"plots/channels.png", "plots/latency.png"}
    for rel in made:
        assert (tmp_path / rel).read_bytes().startswith(PNG)
    m = copy.deepcopy(manifest)
    m["sweep"] = [{"budget": "0.3x", "predicted_ms": 0.4, "fidelity": {"top1_agreement": 0.5}}]
    assert "plots/fidelity.png" in write_plots(m, tmp_path / "plots2")


def test_the_manifest_schema_refuses_a_missing_contract_field(manifest, tmp_path):
    m = copy.deepcopy(manifest)
    del m["latency_ms"]["measured_p90"]
    assert "measured_p90" in errors(m)
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(UsageError, match="invalid manifest"):
        load_manifest(tmp_path)


@pytest.mark.slow
def test_a_sweep_adds_fidelity_against_latency(setup, tmp_path):
    out = tmp_path / "sweep"
    assert main(setup.args(out, "--budget", "0.6x", "--sweep", "0.4x", "--sweep", "0.8x")) == 0
    m = load_manifest(out)
    assert [p["budget"] for p in m["sweep"]] == ["0.4x", "0.8x"]
    assert all("fidelity" in p and p["predicted_ms"] > 0 for p in m["sweep"])
    assert (out / "plots" / "fidelity.png").read_bytes().startswith(PNG)
    assert "plots/fidelity.png" in m["files"]
    assert "## Budget sweep" in (out / "report.md").read_text()
