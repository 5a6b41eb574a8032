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
CPUINFO = "".join(f"processor\t: {i}\nBogoMIPS\t: 52.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 "
                  f"crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU architecture: 8\n\n"
                  for i in range(2))
GETPROP = """#!/bin/sh
case "$1" in
  ro.product.cpu.abi) echo arm64-v8a ;;
  ro.product.model) echo sdk_gphone64_arm64 ;;
  ro.board.platform) echo emu64a ;;
  *) echo ;;
esac
"""


class Phone:
    def __init__(self, folder: Path, monkeypatch, serials: tuple[str, ...] = (SERIAL,)):
        self.folder = Path(folder)
        self.root = self.folder / "device"
        self.monkeypatch = monkeypatch
        (self.root / "data/local/tmp").mkdir(parents=True)
        # two cores (a little and a big one): the stand-in runs the runner on this machine, and
        # the detected profile pins it to the fastest core, which must exist here too
        for cpu in range(2):
            freq = self.root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq"
            freq.mkdir(parents=True)
            (freq / "scaling_governor").write_text("performance\n")
            (freq / "scaling_cur_freq").write_text(f"{1800000 + 100000 * cpu}\n")
            (freq / "cpuinfo_max_freq").write_text("1800000\n" if cpu == 0 else "2850000\n")
        # what an arm64 phone says about itself: /proc/cpuinfo and getprop (toybox's sh runs it)
        (self.root / "proc").mkdir()
        (self.root / "proc/cpuinfo").write_text(CPUINFO)
        (self.root / "system/bin").mkdir(parents=True)
        getprop = self.root / "system/bin/getprop"
        getprop.write_text(GETPROP)
        getprop.chmod(0o755)
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
        return adb_calls(self.folder)


def adb_calls(folder: Path) -> list[list[str]]:
    """Every command the stand-in adb was given for the phone in `folder`, in order."""
    log = Path(folder) / "adb-calls.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
