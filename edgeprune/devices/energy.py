"""Energy sensors: which one a device has, and what a measured figure covers.

Measured energy is read by the runner on the device during the timed loop (runtimes/runner.py
samples the sensor named in the task). Three sensor kinds exist:

- ``rapl``:    a Linux powercap counter, ``/sys/class/powercap/intel-rapl:N/energy_uj``
               (Intel, and AMD Zen through the same driver); usually root-only.
- ``battery``: an Android/Linux power-supply folder with ``current_now`` (uA) and
               ``voltage_now`` (uV), e.g. ``/sys/class/power_supply/battery``.
- ``hwmon``:   a hwmon or INA3221/INA219 ``power*_input`` file in microwatts
               (Jetson boards, USB power meters exposed through hwmon).

Without a sensor, energy is *estimated* (edgeprune/energy_estimate.py), and every output that
shows it says ``estimated``.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass

@dataclass(frozen=True)
class SensorSpec:
    kind: str   # "rapl" | "battery" | "hwmon"
    path: str

    def to_task(self) -> dict:
        return {"kind": self.kind, "path": self.path}


SENSOR_LABELS = {
    "rapl": "RAPL: CPU package energy, not the whole machine's",
    "battery": "battery: the whole phone's draw while discharging",
    "hwmon": "hwmon/INA power rail",
}


def describe_sensor(kind: str | None) -> str | None:
    """What a measured energy figure covers, by the sensor it came from."""
    return None if kind is None else SENSOR_LABELS.get(kind, kind)


def _readable(path: str) -> bool:
    try:
        with open(path) as f:
            f.read()
        return True
    except OSError:
        return False


def detect_sensor(root: str = "/") -> SensorSpec | None:
    """The first readable energy sensor on this machine (or under `root`, a device's root)."""
    for p in sorted(glob.glob(os.path.join(root, "sys/class/powercap/intel-rapl:[0-9]*/energy_uj"))):
        if ":" not in os.path.basename(os.path.dirname(p)).split("rapl:")[-1] and _readable(p):
            return SensorSpec("rapl", p)
    for folder in sorted(glob.glob(os.path.join(root, "sys/class/power_supply/*"))):
        cur, volt = os.path.join(folder, "current_now"), os.path.join(folder, "voltage_now")
        if _readable(cur) and _readable(volt):
            return SensorSpec("battery", folder)
    patterns = ("sys/class/hwmon/hwmon*/power[0-9]*_input",
                "sys/bus/i2c/drivers/ina3221*/*/hwmon/hwmon*/power[0-9]*_input")
    for pattern in patterns:
        for p in sorted(glob.glob(os.path.join(root, pattern))):
            if _readable(p):
                return SensorSpec("hwmon", p)
    return None


def sensor_from_profile(power: dict | None) -> SensorSpec | None:
    if not power or not power.get("kind") or power.get("kind") == "none":
        return None
    return SensorSpec(power["kind"], power["path"])
