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
