"""`edgeprune devices [--json]`: profiles on disk and the devices reachable now."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from edgeprune.cli import main
from edgeprune.commands.devices_cmd import parse_adb_devices
from tests.devices.adb_phone import SERIAL, Phone
from tests.devices.sshd_server import free_port
from tests.devices.system_tools import ensure_debian


def test_lists_profiles_and_the_attached_phone(tmp_path, monkeypatch, capsys):
    Phone(tmp_path / "phone", monkeypatch, serials=(SERIAL, "R5CT1234ABC"))
    monkeypatch.delenv("EDGEPRUNE_TRACKER", raising=False)
    assert main(["devices", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    names = {p["name"]: p for p in report["profiles"]}
    assert {"host", "pixel-7", "raspberry-pi-5"} <= set(names)
    assert names["pixel-7"]["reach"] == "adb" and names["pixel-7"]["lut_measured"] is False
    assert report["adb"]["available"] is True
    assert [d["serial"] for d in report["adb"]["devices"]] == [SERIAL, "R5CT1234ABC"]
    assert report["adb"]["devices"][0]["state"] == "device"
    assert report["adb"]["devices"][0]["model"] == "sdk_gphone64_arm64"

    assert main(["devices"]) == 0
    text = capsys.readouterr().out
    assert f"adb:{SERIAL}" in text and "pixel-7" in text and "EDGEPRUNE_TRACKER" in text


def test_missing_adb_and_a_silent_tracker_are_reported_not_raised(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EDGEPRUNE_ADB", str(tmp_path / "no-adb"))
    monkeypatch.setenv("EDGEPRUNE_TRACKER", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("EDGEPRUNE_RETRY_DELAY", "0.01")
    assert main(["devices", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["adb"]["available"] is False and "not installed" in report["adb"]["error"]
    (tracker,) = report["trackers"]
    assert "cannot reach the RPC tracker" in tracker["error"]


def test_parses_adb_devices_output_with_every_state():
    text = ("* daemon not running; starting now at tcp:5037\n* daemon started successfully\n"
            "List of devices attached\n"
            "emulator-5554          device product:sdk_gphone64_arm64 model:sdk_gphone64_arm64 device:emu64a transport_id:1\n"
            "R5CT1234ABC\tunauthorized usb:1-1 transport_id:2\n"
            "192.168.1.20:5555\toffline\n\n")
    devices = parse_adb_devices(text)
    assert [(d["serial"], d["state"]) for d in devices] == [
        ("emulator-5554", "device"), ("R5CT1234ABC", "unauthorized"), ("192.168.1.20:5555", "offline")]
    assert devices[0]["model"] == "sdk_gphone64_arm64" and devices[1]["usb"] == "1-1"


@pytest.mark.slow
def test_the_real_adb_client_with_no_phone_attached(monkeypatch, capsys):
    ensure_debian({"/usr/bin/adb": "adb"})
    # a private adb server port: neither meets a user's running adb server nor leaves ours behind
    port = str(free_port())
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", port)
    monkeypatch.delenv("EDGEPRUNE_ADB", raising=False)
    monkeypatch.delenv("EDGEPRUNE_TRACKER", raising=False)
    try:
        assert main(["devices", "--json"]) == 0
        adb = json.loads(capsys.readouterr().out)["adb"]
        assert adb["available"] is True, adb
        assert adb["devices"] == []
    finally:
        subprocess.run(["/usr/bin/adb", "kill-server"], env={**os.environ, "ANDROID_ADB_SERVER_PORT": port},
                       capture_output=True, timeout=30)
