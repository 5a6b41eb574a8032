"""Which energy sensor a remote device offers, found by a POSIX sh script (busybox/toybox run
it on a phone, any sh on a board) over a device's /sys tree."""

from __future__ import annotations

import os
import shlex
import subprocess

from edgeprune.devices.remote import discover_sensor_script


def _discover(sys_root, tmp_path):
    link = tmp_path / "work" / "sensor"
    link.parent.mkdir(exist_ok=True)
    out = subprocess.run(["sh", "-c", discover_sensor_script(shlex.quote(str(link)), str(sys_root))],
                         check=True, capture_output=True, text=True).stdout.split()
    return out, link


def _file(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_phone_battery_is_linked_first(tmp_path):
    sys_root = tmp_path / "sys"
    _file(sys_root / "class/power_supply/battery/current_now", "-400000\n")
    _file(sys_root / "class/power_supply/battery/voltage_now", "3900000\n")
    _file(sys_root / "class/hwmon/hwmon0/power1_input", "1000000\n")
    out, link = _discover(sys_root, tmp_path)
    assert out == ["sensor", "battery"]
    assert os.readlink(link) == str(sys_root / "class/power_supply/battery")


def test_a_jetson_ina3221_power_rail_is_found_over_a_board_without_battery(tmp_path):
    sys_root = tmp_path / "sys"
    rail = sys_root / "bus/i2c/drivers/ina3221x/1-0040/hwmon/hwmon3/power1_input"
    _file(rail, "5120000\n")
    _file(sys_root / "class/hwmon/hwmon0/temp1_input", "41000\n")
    out, link = _discover(sys_root, tmp_path)
    assert out == ["sensor", "hwmon"]
    assert os.readlink(link) == str(rail)


def test_a_device_without_sensor_links_nothing(tmp_path):
    sys_root = tmp_path / "sys"
    _file(sys_root / "class/hwmon/hwmon0/temp1_input", "41000\n")
    out, link = _discover(sys_root, tmp_path)
    assert out == [] and not os.path.lexists(link)
