"""A stand-in phone for tests: a device root folder served by tests/devices/fake_adb/adb.

The folder holds the sysfs files a phone has (CPU governor and frequencies, thermal zones,
a battery), the stand-in `adb` goes first on PATH, and the host's Python stands in for the
aarch64 device bundle.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

FAKE_ADB = Path(__file__).resolve().parent / "fake_adb"
SERIAL = "emulator-5554"


class Phone:
    def __init__(self, folder: Path, monkeypatch, serials: tuple[str, ...] = (SERIAL,)):
        self.folder = Path(folder)
        self.root = self.folder / "device"
        self.monkeypatch = monkeypatch
        (self.root / "data/local/tmp").mkdir(parents=True)
        for cpu in range(4):
            freq = self.root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq"
            freq.mkdir(parents=True)
            (freq / "scaling_governor").write_text("performance\n")
            (freq / "scaling_cur_freq").write_text(f"{1800000 + 100000 * cpu}\n")
        for zone, temp in enumerate((41000, 38500)):
            z = self.root / f"sys/class/thermal/thermal_zone{zone}"
            z.mkdir(parents=True)
            (z / "temp").write_text(f"{temp}\n")
        battery = self.root / "sys/class/power_supply/battery"
        battery.mkdir(parents=True)
        (battery / "current_now").write_text("-350000\n")   # uA, negative while discharging
        (battery / "voltage_now").write_text("3900000\n")   # uV
        monkeypatch.setenv("PATH", f"{FAKE_ADB}:{__import__('os').environ['PATH']}")
        monkeypatch.setenv("FAKE_ADB_ROOT", str(self.root))
        monkeypatch.setenv("FAKE_ADB_SERIALS", ",".join(serials))
        monkeypatch.setenv("EDGEPRUNE_DEVICE_PYTHON", sys.executable)
        monkeypatch.setenv("EDGEPRUNE_RETRIES", "3")
        monkeypatch.setenv("EDGEPRUNE_RETRY_DELAY", "0.05")

    def go_offline_after(self, results: int) -> None:
        self.monkeypatch.setenv("FAKE_ADB_OFFLINE_AFTER", str(results))

    def reconnect(self) -> None:
        self.monkeypatch.delenv("FAKE_ADB_OFFLINE_AFTER", raising=False)
        (self.folder / "device-offline").unlink(missing_ok=True)

    @property
    def offline(self) -> bool:
        return (self.folder / "device-offline").exists()

    def measured(self) -> Counter:
        """How many times the phone measured each task (the stand-in's audit of every
        result line it ever wrote), keyed by the runner task id."""
        audit = self.folder / "device-audit.jsonl"
        lines = audit.read_text().splitlines() if audit.exists() else []
        return Counter(json.loads(line.split("\t", 1)[1])["id"] for line in lines)

    def adb_calls(self) -> list[list[str]]:
        log = self.folder / "adb-calls.log"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
