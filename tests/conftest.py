"""Every test run gets its own user config folder: profiles detected from stand-in devices
(devices/detect.py) must not land in, or be read from, the real ~/.config/edgeprune."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def private_user_config(tmp_path_factory):
    before = os.environ.get("EDGEPRUNE_CONFIG_DIR")
    os.environ["EDGEPRUNE_CONFIG_DIR"] = str(tmp_path_factory.mktemp("user-config"))
    yield
    if before is None:
        os.environ.pop("EDGEPRUNE_CONFIG_DIR", None)
    else:
        os.environ["EDGEPRUNE_CONFIG_DIR"] = before


# Files whose tests compile to a latency budget and expect it met. Their closed loop times
# artifacts a millisecond or two long, and a second test process on the other core moves
# those figures by 5-10% (seen: plans measured 6% under the target in the loop, 7% over it at
# verify), so `make test` runs them after the parallel part, alone on the machine. The report
# tests join them because they read the shared compile (tests/pipeline/fixtures.compiled) that
# this part builds anyway: in the parallel part each worker compiled it again (about 30 s).
SERIAL_FILES = {
    "tests/backends/test_tvm_fresh_lut.py",
    "tests/cli/test_budget_truth.py",
    "tests/cli/test_compile.py",
    "tests/cli/test_compile_config.py",
    "tests/cli/test_plan_cmd.py",
    "tests/cli/test_verify.py",
    "tests/frontend/test_dynamic_dims.py",
    "tests/install/test_moved_artifact.py",
    "tests/install/test_wheel.py",
    "tests/pipeline/test_api.py",
    "tests/pipeline/test_gates_config.py",
    "tests/report/test_github_summary.py",
    "tests/report/test_report.py",
}


# The longest files of the two-worker part, started first: pytest-xdist hands out files in
# collection order, and a two-minute file picked up last would keep one worker busy while the
# other sits idle (longest first keeps the two workers' totals close).
LONGEST_FILES = (
    "tests/devices/test_emulated_phone.py",
    "tests/backends/test_tvm_rpc_tuning.py",
    "tests/devices/test_bundle_build.py",
    "tests/backends/test_emulation.py",
)


def pytest_collection_modifyitems(config, items):
    root = config.rootpath
    for item in items:
        if item.path.relative_to(root).as_posix() in SERIAL_FILES:
            item.add_marker(pytest.mark.serial)
    first = {name: i for i, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: first.get(item.path.relative_to(root).as_posix(), len(first)))
