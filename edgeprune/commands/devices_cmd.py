"""`edgeprune devices [--json]`: the profiles on disk and the devices reachable now.

Reachable now means: phones `adb devices -l` lists, and the device pools (keys with free and
busy counts) of every TVM RPC tracker named by EDGEPRUNE_TRACKER (HOST:PORT) or by an rpc
profile's address. A missing adb or a tracker that does not answer is reported in the
listing, not raised: the command is for looking around.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from ..devices.profile import load_profile_file, parse_device, profile_files
from ..errors import DeviceError, EdgePruneError, UsageError


@click.command("devices")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of a listing.")
def command(as_json):
    """Profiles on disk and devices reachable now: phones `adb devices -l` lists, and the
    device pools of the TVM RPC trackers named by EDGEPRUNE_TRACKER=HOST:PORT or by an rpc
    profile's address."""
    from .. import locations

    profiles = profiles_on_disk()
    report = {"profiles": profiles, "adb": adb_devices(), "trackers": trackers(profiles),
              "locations": locations.describe()}
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(render(report))


def profiles_on_disk(folder: Path | None = None) -> list[dict]:
    """The packaged profiles and the user's own (locations.py; a user profile of the same
    name wins), or those of `folder`."""
    rows = []
    for path in profile_files(folder):
        try:
            p = load_profile_file(path)
        except UsageError as e:
            rows.append({"name": path.stem, "path": str(path), "error": str(e)})
            continue
        rows.append({"name": p.name, "path": str(path), "description": p.description, "reach": p.reach,
                     "address": p.address, "lut_measured": p.lut_measured})
    return rows


def adb_devices() -> dict:
    from ..devices import transport
    from ..devices.adb import adb_program

    try:
        done = transport.run([adb_program(), "devices", "-l"], what="adb", timeout=30,
                             transient=lambda d: "daemon" in d.stderr.decode(errors="replace"),
                             retry=transport.Retry(attempts=2, first_delay_s=1.0))
    except DeviceError as e:
        return {"available": False, "devices": [], "error": str(e)}
    return {"available": True, "devices": parse_adb_devices(done.stdout.decode(errors="replace"))}


def parse_adb_devices(text: str) -> list[dict]:
    """`adb devices -l` -> [{"serial", "state", "model", ...}]; daemon chatter is skipped."""
    devices = []
    for line in text.splitlines():
        if not line.strip() or line.startswith(("List of devices", "*", "adb ")):
            continue
        serial, _, rest = line.partition("\t") if "\t" in line else line.partition(" ")
        words = rest.split()
        if not words:
            continue
        entry = {"serial": serial.strip(), "state": words[0]}
        for word in words[1:]:
            k, sep, v = word.partition(":")
            if sep:
                entry[k] = v
        devices.append(entry)
    return devices


def trackers(profiles: list[dict]) -> list[dict]:
    addresses = []
    env = os.environ.get("EDGEPRUNE_TRACKER")
    if env:
        addresses.append(env.strip())
    for p in profiles:
        if p.get("reach") == "rpc" and p.get("address"):
            try:
                spec = parse_device(p["address"])
            except EdgePruneError:
                continue
            addresses.append(f"{spec.host}:{spec.port}")
    rows = []
    for address in dict.fromkeys(addresses):
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit():
            rows.append({"address": address, "error": "expected HOST:PORT"})
            continue
        try:
            from ..devices.rpc import tracker_queue

            rows.append({"address": address, "keys": tracker_queue(host.strip("[]"), int(port))})
        except DeviceError as e:
            rows.append({"address": address, "error": str(e)})
    return rows


def render(report: dict) -> str:
    loc = report.get("locations") or {}
    lines = [f"Profiles ({loc['packaged_profiles']}, and yours in {loc['user_profiles']}):"
             if loc else "Profiles:"]
    for p in report["profiles"]:
        if "error" in p:
            lines.append(f"  {p['name']:<22} invalid: {p['error']}")
            continue
        lut = "measured LUT" if p["lut_measured"] else "no measured LUT"
        where = p["reach"] + (f" {p['address']}" if p.get("address") else "")
        lines.append(f"  {p['name']:<22} {where:<28} {lut:<16} {p['description']}")
    adb = report["adb"]
    lines.append("adb:")
    if not adb["available"]:
        lines.append(f"  unavailable: {adb['error']}")
    elif not adb["devices"]:
        lines.append("  no devices attached")
    for d in adb["devices"]:
        model = d.get("model", "")
        lines.append(f"  adb:{d['serial']:<26} {d['state']:<12} {model}")
    if loc:
        lines.append(f"LUTs: {loc['luts']}  TVM tuning: {loc['tvm_tuning']}")
    lines.append("RPC trackers:" if report["trackers"] else "RPC trackers: none configured (set EDGEPRUNE_TRACKER=HOST:PORT)")
    for t in report["trackers"]:
        if "error" in t:
            lines.append(f"  {t['address']}: {t['error']}")
        elif not t["keys"]:
            lines.append(f"  {t['address']}: no devices registered")
        for key, q in sorted(t.get("keys", {}).items()):
            lines.append(f"  rpc:{t['address']}/{key:<16} {q['free']} free, {q['pending']} waiting")
    return "\n".join(lines)
