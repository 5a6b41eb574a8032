"""Energy: which sensor a device has, and the analytical estimate where it has none.

Measured energy is read by the runner on the device during the timed loop (runtimes/runner.py
samples the sensor named in the task). Three sensor kinds exist:

- ``rapl``:    a Linux powercap counter, ``/sys/class/powercap/intel-rapl:N/energy_uj``
               (Intel, and AMD Zen through the same driver); usually root-only.
- ``battery``: an Android/Linux power-supply folder with ``current_now`` (uA) and
               ``voltage_now`` (uV), e.g. ``/sys/class/power_supply/battery``.
- ``hwmon``:   a hwmon or INA3221/INA219 ``power*_input`` file in microwatts
               (Jetson boards, USB power meters exposed through hwmon).

Without a sensor, energy is *estimated* from the work done — every output that shows it says
``estimated``. The constants are Horowitz's 45 nm figures ("Computing's energy problem (and
what we can do about it)", ISSCC 2014, Fig. 1.1.9): FP32 multiply 3.7 pJ + add 0.9 pJ, INT8
multiply 0.2 pJ + add 0.03 pJ, and a 64-bit DRAM access 1.3-2.6 nJ (the low end, per byte).
They give an order of magnitude and the right trend under pruning, not a device's real draw.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass

PJ_PER_MAC = {"fp32": 3.7 + 0.9, "int8": 0.2 + 0.03}
PJ_PER_DRAM_BYTE = 1300.0 / 8
ESTIMATE_SOURCE = "estimated (Horowitz ISSCC 2014, 45 nm: pJ per MAC and per DRAM byte)"


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


def estimate_mj(macs: float, bytes_moved: float, dtype: str = "fp32") -> float:
    """Analytical energy of some work, in millijoules (marked `estimated` wherever shown)."""
    return (macs * PJ_PER_MAC[dtype] + bytes_moved * PJ_PER_DRAM_BYTE) * 1e-9


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
