"""Device profiles on disk and DEVICE spec parsing."""

import pytest

from edgeprune.devices.energy import detect_sensor
from edgeprune.energy_estimate import estimate_mj
from edgeprune.devices.profile import list_profiles, load_profile_file, parse_device
from edgeprune.errors import UsageError


def test_shipped_profiles_are_valid_and_remote_ones_say_they_have_no_lut():
    profiles = {p.name: p for p in list_profiles()}
    assert {"host", "pixel-7", "snapdragon-8-gen2", "raspberry-pi-5", "jetson-orin-nano"} <= set(profiles)
    assert profiles["host"].reach == "local" and profiles["host"].channel_step == "measure"
    for name in ("pixel-7", "snapdragon-8-gen2", "raspberry-pi-5", "jetson-orin-nano"):
        p = profiles[name]
        assert not p.lut_measured and p.roofline["source"] and p.cpu["clusters"]
        assert p.tvm_target()["kind"] in ("llvm", "opencl", "cuda")


@pytest.mark.parametrize("spec, want", [
    ("adb:emulator-5554", {"kind": "adb", "serial": "emulator-5554"}),
    ("adb:a;rm -rf /$(x)", {"kind": "adb", "serial": "a;rm -rf /$(x)"}),
    ("ssh:pi@10.0.0.7", {"kind": "ssh", "user": "pi", "host": "10.0.0.7", "port": None}),
    ("ssh:me@board.local:2222", {"kind": "ssh", "user": "me", "host": "board.local", "port": 2222}),
    ("ssh:me@[::1]:22", {"kind": "ssh", "user": "me", "host": "::1", "port": 22}),
    ("rpc:127.0.0.1:9190/android", {"kind": "rpc", "host": "127.0.0.1", "port": 9190, "key": "android"}),
])
def test_device_specs_parse_verbatim(spec, want):
    parsed = parse_device(spec)
    assert parsed.raw == spec
    for k, v in want.items():
        assert getattr(parsed, k) == v


@pytest.mark.parametrize("spec", ["adb:", "ssh:nohost", "ssh:u@h:99999", "rpc:host/key", "nosuchdevice", ""])
def test_bad_device_specs_are_usage_errors(spec):
    with pytest.raises(UsageError, match="--device"):
        parse_device(spec)


def test_a_broken_profile_file_names_the_file_and_field(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('name = "bad"\ndescription = "x"\n[reach]\nkind = "carrier-pigeon"\n[cpu]\narch="x"\ncores=1\n[runtimes]\n')
    with pytest.raises(UsageError, match=r"bad.toml: invalid device profile at reach.kind"):
        load_profile_file(p)
    p.write_text("name = ")
    with pytest.raises(UsageError, match="invalid TOML"):
        load_profile_file(p)


def test_sensor_detection_finds_rapl_battery_and_hwmon_under_a_root(tmp_path):
    assert detect_sensor(str(tmp_path)) is None
    bat = tmp_path / "sys/class/power_supply/battery"
    bat.mkdir(parents=True)
    (bat / "current_now").write_text("-350000\n")
    (bat / "voltage_now").write_text("3900000\n")
    assert detect_sensor(str(tmp_path)).kind == "battery"
    rapl = tmp_path / "sys/class/powercap/intel-rapl:0"
    rapl.mkdir(parents=True)
    (rapl / "energy_uj").write_text("123\n")
    s = detect_sensor(str(tmp_path))
    assert s.kind == "rapl" and s.path.endswith("intel-rapl:0/energy_uj")


def test_energy_estimate_scales_with_work_and_int8_is_cheaper():
    assert estimate_mj(2e9, 0) == pytest.approx(2 * estimate_mj(1e9, 0))
    assert estimate_mj(1e9, 1e6, "int8") < estimate_mj(1e9, 1e6, "fp32")
