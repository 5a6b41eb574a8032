"""Every benchmark script imports against the package as it is today: a module moved or
renamed in edgeprune/ breaks a benchmark at once, not on the next quiet-machine run."""

from __future__ import annotations

import pytest

from tests.benchmarks.test_peers_smoke import BENCH, _load


@pytest.mark.parametrize("name", sorted(p.stem for p in BENCH.glob("*.py")))
def test_benchmark_module_imports(name):
    assert _load(name) is not None
