"""An emulated arm64 phone for tests: what `adb shell` reaches is an arm64 root filesystem run
by qemu-user, holding only what a stock Android phone has that edgeprune talks to: busybox
as /system/bin (toybox's role), a `getprop`, /proc/cpuinfo, the sysfs files of two CPU cores,
a thermal zone and a battery. No Python and no x86 program: everything that runs there is
aarch64 (busybox, and later the device bundle edgeprune pushes), started by the kernel through
binfmt_misc and qemu-aarch64 (runtimes/emulation/host_tools.sh registers it).

tests/devices/fake_adb/adb serves it with FAKE_ADB_CHROOT=1: `shell` runs busybox's sh chrooted
into the phone's root, `push`/`pull` copy into and out of it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from edgeprune import locations
from edgeprune.backends.emulation import emulation_available, ensure_host_tools
from edgeprune.devices.bundle_build import _fresh_tmp, _locked, mmdebstrap_mode, SUITE
from tests.devices.adb_phone import FAKE_ADB, SERIAL, adb_calls

BINFMT = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
CPUINFO = "".join(f"processor\t: {i}\nBogoMIPS\t: 52.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 "
                  f"crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\n"
                  f"CPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n\n"
                  for i in range(2))
GETPROP = """#!/system/bin/sh
case "$1" in
  ro.product.cpu.abi) echo arm64-v8a ;;
  ro.product.model) echo Emulated arm64 phone ;;
  ro.board.platform) echo qemu-neoverse-n1 ;;
  *) echo ;;
esac
"""


def unavailable() -> str | None:
    """None when an emulated phone can run here, else why not."""
    why = emulation_available()
    if why:
        return why
    ensure_host_tools()
    flags = next((ln.split(":", 1)[1] for ln in BINFMT.read_text().splitlines() if ln.startswith("flags:")), "") \
        if BINFMT.exists() else ""
    if "F" not in flags:
        return ("the kernel does not start aarch64 programs through qemu (binfmt_misc qemu-aarch64 with "
                "the F flag is not registered; runtimes/emulation/host_tools.sh registers it as root)")
    return None


def busybox() -> Path:
    """Debian's static arm64 busybox, unpacked once into the user cache."""
    folder = locations.cache_dir() / "emulation"
    done = folder / f"busybox-{SUITE}-arm64"
    if (done / ".edgeprune-complete").exists():
        return done / "bin/busybox"
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder):
        if not (done / ".edgeprune-complete").exists():
            tmp = _fresh_tmp(folder, "busybox")
            try:
                subprocess.run(["mmdebstrap", "--quiet", f"--mode={mmdebstrap_mode()}", "--arch=arm64",
                                "--variant=extract", "--include=busybox-static", SUITE, str(tmp)],
                               check=True, capture_output=True, timeout=600)
                (tmp / ".edgeprune-complete").touch()
                shutil.rmtree(done, ignore_errors=True)
                os.rename(tmp, done)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return done / "bin/busybox"


class EmulatedPhone:
    """One phone in `folder`/device, reached as adb:SERIAL through the stand-in adb."""

    def __init__(self, folder: Path, monkeypatch, bundle: Path):
        self.folder = Path(folder)
        self.root = self.folder / "device"
        bin_dir = self.root / "system/bin"
        bin_dir.mkdir(parents=True)
        shutil.copy2(busybox(), bin_dir / "busybox")
        applets = subprocess.run([str(bin_dir / "busybox"), "--list"], capture_output=True, text=True,
                                 check=True, timeout=60).stdout.split()
        for name in applets:
            if name != "busybox":
                (bin_dir / name).symlink_to("busybox")
        (bin_dir / "getprop").write_text(GETPROP)
        (bin_dir / "getprop").chmod(0o755)
        (self.root / "data/local/tmp").mkdir(parents=True)
        (self.root / "dev").mkdir()
        try:
            os.mknod(self.root / "dev/null", 0o666 | 0o020000, os.makedev(1, 3))
        except OSError:
            (self.root / "dev/null").touch()
        # /proc and /sys are not mounted in the chroot: these are the files the device is read by
        (self.root / "proc").mkdir()
        (self.root / "proc/cpuinfo").write_text(CPUINFO)
        cpus = self.root / "sys/devices/system/cpu"
        for cpu, max_khz in enumerate((1800000, 2850000)):
            freq = cpus / f"cpu{cpu}/cpufreq"
            freq.mkdir(parents=True)
            (freq / "cpuinfo_max_freq").write_text(f"{max_khz}\n")
            (freq / "scaling_cur_freq").write_text(f"{max_khz}\n")
            (freq / "scaling_governor").write_text("performance\n")
        for name in ("possible", "present", "online"):
            (cpus / name).write_text("0-1\n")
        zone = self.root / "sys/class/thermal/thermal_zone0"
        zone.mkdir(parents=True)
        (zone / "temp").write_text("39000\n")
        battery = self.root / "sys/class/power_supply/battery"
        battery.mkdir(parents=True)
        for name, value in (("status", "Discharging"), ("current_now", "-420000"), ("voltage_now", "3850000")):
            (battery / name).write_text(f"{value}\n")

        monkeypatch.setenv("PATH", f"{FAKE_ADB}:{os.environ['PATH']}")
        monkeypatch.setenv("FAKE_ADB_ROOT", str(self.root))
        monkeypatch.setenv("FAKE_ADB_SERIALS", SERIAL)
        monkeypatch.setenv("FAKE_ADB_CHROOT", "1")
        monkeypatch.delenv("EDGEPRUNE_DEVICE_PYTHON", raising=False)
        monkeypatch.setenv("EDGEPRUNE_DEVICE_BUNDLE", str(bundle))

    def shell(self, line: str) -> subprocess.CompletedProcess:
        return subprocess.run(["adb", "-s", SERIAL, "shell", line], capture_output=True, text=True, timeout=600)

    def pythons(self) -> list[str]:
        """Every python executable on the phone outside edgeprune's pushed bundle."""
        found = []
        for folder, dirs, files in os.walk(self.root):
            rel = Path(folder).relative_to(self.root).as_posix()
            if rel.startswith("data/local/tmp/edgeprune/bundle"):
                dirs.clear()
                continue
            found += [f"{rel}/{f}" for f in files if f.startswith("python")]
        return found

    def adb_calls(self) -> list[list[str]]:
        return adb_calls(self.folder)
